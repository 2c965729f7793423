"""train: datasets, the synthetic set, the training loop and evaluation (docs/TRAINING.md)."""
