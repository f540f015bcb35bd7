"""Faces: where a face is in a photo (BlazeFace) and the one way it is cut out for the model."""
