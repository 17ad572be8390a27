"""The data sources by name, the dataset a training run sees, and the dispatch from ``data.source`` to its source.

A new source is a module with ``sizes(cfg)`` and ``open(cfg)`` (see ``_protocol.py``), one line in ``SOURCES``,
and a config class of the same name in ``vqtune.config.DATA_SOURCES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from vqtune.config import SourceConfig
from vqtune.data import _fashion_mnist, _folder, _skimage_photos
from vqtune.data._memory import human
from vqtune.data._protocol import Source, SplitSizes

# source -> its module. A new source: one line here.
SOURCES: Mapping[str, Source] = {
    "skimage-photos": _skimage_photos,
    "folder": _folder,
    "fashion-mnist": _fashion_mnist,
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


def load_images(cfg: SourceConfig) -> ImageData:
    """Read ``cfg.source`` into ``uint8 (N, C, H, W)`` train and val tensors, ``(H, W) = cfg.size``.

    Raises:
        DataError: the source is missing, empty, unreadable, or cannot give images of this size.

    >>> from vqtune.config import DataConfig
    >>> data = load_images(DataConfig(resolution=16, crops_per_image=4))
    >>> data.train.dtype, tuple(data.train.shape[1:])
    (torch.uint8, (3, 16, 16))
    """
    train, val, description = SOURCES[cfg.source].open(cfg)
    description = f"{description} ({human(train.nbytes + val.nbytes)} of uint8 images)"
    return ImageData(
        torch.from_numpy(np.ascontiguousarray(train)), torch.from_numpy(np.ascontiguousarray(val)), description
    )


def split_sizes(cfg: SourceConfig) -> SplitSizes:
    """The sizes :func:`load_images` would give for ``cfg``; reads headers, file lists and the folder cache only.

    Raises:
        DataError: the source is missing or empty.
    """
    return SOURCES[cfg.source].sizes(cfg)
