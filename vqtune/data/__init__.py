"""Image sources as ``uint8 (N, C, H, W)`` tensors with a deterministic, image-level train/val split.

Sources: the photographs bundled with scikit-image, any folder of JPEG/PNG/WebP/BMP files (decoded once, then
cached on disk), and the Fashion-MNIST IDX files. Nothing here imports Ray or Optuna.
"""

from vqtune.data._sizes import SplitSizes, split_sizes
from vqtune.data._sources import ImageData, load_images

__all__ = ["ImageData", "SplitSizes", "load_images", "split_sizes"]
