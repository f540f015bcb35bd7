"""Pretrained backbones: one module per family, and the registry that builds and cuts them by name."""
