"""vqtune: hyperparameter search for VQ-VAE image models and their PixelCNN priors."""

__version__ = "0.2.0"
