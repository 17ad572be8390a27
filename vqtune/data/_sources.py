"""The dataset a training run sees, and the dispatch from ``data.source`` to the reader that builds it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vqtune.config import DataConfig
from vqtune.data._fashion_mnist import load_fashion_mnist
from vqtune.data._folder import load_folder
from vqtune.data._memory import human
from vqtune.data._skimage_photos import load_skimage_photos

_READERS = {
    "skimage-photos": load_skimage_photos,
    "folder": load_folder,
    "fashion-mnist": load_fashion_mnist,
}


@dataclass(frozen=True)
class ImageData:
    """Training and validation images of one source.

    Attributes:
        train: ``uint8 (N, C, H, W)``, contiguous, on the CPU.
        val: ``uint8 (M, C, H, W)``; no source image feeds both splits (unless the source holds only one).
        description: one line for logs, e.g.
            ``"skimage-photos: 16 photos -> 1792 train / 256 val random crops of 32x32x3"``.
    """

    train: torch.Tensor
    val: torch.Tensor
    description: str


def load_images(cfg: DataConfig) -> ImageData:
    """Read ``cfg.source`` into ``uint8 (N, C, H, W)`` train and val tensors, ``(H, W) = cfg.size``.

    Raises:
        DataError: the source is missing, empty, unreadable, or cannot give images of this size.

    >>> data = load_images(DataConfig(resolution=16, crops_per_image=4))
    >>> data.train.dtype, tuple(data.train.shape[1:])
    (torch.uint8, (3, 16, 16))
    """
    channels = cfg.channels or (1 if cfg.source == "fashion-mnist" else 3)
    train, val, description = _READERS[cfg.source](cfg, channels)
    description = f"{description} ({human(train.nbytes + val.nbytes)} of uint8 images)"
    return ImageData(
        torch.from_numpy(np.ascontiguousarray(train)), torch.from_numpy(np.ascontiguousarray(val)), description
    )
