"""Faces in photos: how a model's faces were cut (framing) and cutting photos the same way (alignment)."""
