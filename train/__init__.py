"""train: datasets, the training loop and evaluation (docs/TRAINING.md); the synthetic set is `synth`."""
