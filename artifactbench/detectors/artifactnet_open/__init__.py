"""An open, trainable ArtifactNet: same stages and sizes as the paper, weights of our own."""
