"""Pretrained image backbones built as Keras 3 functional models."""
