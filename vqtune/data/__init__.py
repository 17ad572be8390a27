"""Image sources as ``uint8 (N, C, H, W)`` tensors with a deterministic, image-level train/val split, and the
training data behind one seam that hands out batches.

Sources (``SOURCES``, one module each with ``sizes(cfg)`` and ``open(cfg)``): the photographs bundled with
scikit-image, any folder of JPEG/PNG/WebP/BMP files (decoded once, then cached on disk), and the Fashion-MNIST
IDX files. Training reads its images only through :class:`TrainingData` (:func:`training_data`). Nothing here
imports Ray or Optuna.
"""

from vqtune.data._batches import ImageBatches, TrainingData, to_model_space, training_data
from vqtune.data._protocol import Images, Source, SplitSizes
from vqtune.data._registry import SOURCES, ImageData, load_images, split_sizes

__all__ = [
    "SOURCES",
    "ImageBatches",
    "ImageData",
    "Images",
    "Source",
    "SplitSizes",
    "TrainingData",
    "load_images",
    "split_sizes",
    "to_model_space",
    "training_data",
]
