"""The networks' formats: layer names and widths of the original's two layouts, and the checkpoint
folder (TF1 and TF2 checkpoints, dcgan.json, the shipped model)."""
