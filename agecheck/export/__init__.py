"""Exporting the trained model for runtimes without TensorFlow."""
