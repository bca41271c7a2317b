"""Turning uploaded bytes into the grayscale slice the model sees, and heatmaps back into pictures."""
