"""The training data as training sees it: batches in model space on the device, never the store behind them.

:class:`TrainingData` is all that ``vqtune.train`` asks of its images; :class:`ImageBatches` holds them in memory
as uint8 (on the GPU when they fit, see ``_placement.py``). Another store (images on disk, crops taken per step)
is another class with the same methods, chosen by :func:`training_data`.
"""

from __future__ import annotations

from typing import Iterator, Optional, Protocol, Tuple

import torch

from vqtune.config import SourceConfig
from vqtune.data import _placement
from vqtune.data._registry import ImageData, load_images


def to_model_space(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [-0.5, 0.5], channels-last (faster convolutions on CPU and GPU)."""
    return batch_u8.float().div_(255.0).sub_(0.5).contiguous(memory_format=torch.channels_last)


class TrainingData(Protocol):
    """The images of one training run: the training split in shuffled batches, the validation split in order."""

    description: str  # the images and where they are held, one line for logs
    image_shape: Tuple[int, int, int]  # (C, H, W) of every image
    train_size: int  # images in the training split
    val_size: int  # images in the validation split

    def epoch(self, batch_size: int) -> Iterator[torch.Tensor]:
        """One pass over the training split in a fresh random order: ``train_size // batch_size`` batches of
        ``batch_size`` images in model space on the device (the ragged last one is dropped, so that every step has
        the same shape). The order is drawn when this is called, from torch's generator (the epoch loop seeds it
        per epoch)."""

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """The training images at ``indices`` in model space (:func:`to_model_space`) on the device."""

    def val_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The validation split in order, ``uint8 (B, C, H, W)`` batches of at most ``batch_size`` on the device."""

    def val_images(self, count: int) -> torch.Tensor:
        """``count`` validation images (all when fewer) spread evenly over the split, the same ones every call,
        ``uint8 (B, C, H, W)`` on the device."""

    def val_variance(self) -> float:
        """The variance of the validation pixels on the [0, 1] scale (what the normalised MSE divides by)."""


class ImageBatches:
    """:class:`TrainingData` of images held in memory as uint8: on ``device`` when they fit (a batch is an index
    into a resident tensor, no copy per step), else in pinned host memory, each batch copied over as it is taken.

    Attributes:
        train, val: the ``uint8 (N, C, H, W)`` splits where they are held.
    """

    def __init__(self, images: ImageData, device: torch.device):
        self.device = device
        self.train, self.val = _placement.place([images.train, images.val], device)
        held = f"on {device}" if self.train.is_cuda else (
            "in pinned host memory" if self.train.is_pinned() else "in host memory")
        self.description = f"{images.description}, held {held}"
        self.image_shape = tuple(self.train.shape[1:])
        self.train_size, self.val_size = len(self.train), len(self.val)

    def epoch(self, batch_size: int) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.train_size, device=self.train.device)
        return (self.batch(order[step * batch_size : (step + 1) * batch_size])
                for step in range(self.train_size // batch_size))

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        return to_model_space(self.train[indices].to(self.device))

    def val_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.val_size, batch_size):
            yield self.val[start : start + batch_size].to(self.device)

    def val_images(self, count: int) -> torch.Tensor:
        picks = torch.linspace(0, self.val_size - 1, min(count, self.val_size), device=self.val.device).long()
        return self.val[picks].to(self.device)

    def val_variance(self) -> float:
        return float(self.val.double().div(255).var())


def training_data(cfg: SourceConfig, device: torch.device, images: Optional[ImageData] = None) -> TrainingData:
    """The training data of ``cfg`` on ``device``: ``images`` when already loaded, else the source's, read now.

    Raises:
        DataError: the source is missing, empty, unreadable, or cannot give images of this size.
    """
    return ImageBatches(images if images is not None else load_images(cfg), device)
