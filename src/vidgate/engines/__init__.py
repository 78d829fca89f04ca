"""Engines make the videos; the model registry says which engine serves which model."""
