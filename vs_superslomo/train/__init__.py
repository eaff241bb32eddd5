"""Training: data, synthetic motion, losses, trainer and validation."""
