"""Training the age model: the loop, its input batches, losses, checkpoints, distribution and the
cached activations of the frozen blocks. Nothing at the till imports this package."""
