"""Training the DCGAN: its typed settings and the loop (datasets, checkpoints, samples, TensorBoard)."""
