"""Completing masked images: settings, masks, the engine (the optimisation of z), complete.py's
outputs, and whole photos."""
