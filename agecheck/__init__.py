"""agecheck: age estimation from face photos, a DVC-versioned TensorFlow/Keras pipeline."""
