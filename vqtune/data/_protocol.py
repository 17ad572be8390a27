"""What a data source is: a module of ``vqtune.data.SOURCES`` with ``sizes(cfg)`` and ``open(cfg)``."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from vqtune.config import SourceConfig


class SplitSizes(NamedTuple):
    """The sizes of a data config's splits.

    ``sources`` are what the split is made of, ``unit`` names one of them (photos, files, Fashion-MNIST's images;
    their crops stay on one side); ``exact`` is False when a folder was counted by its files rather than decoded
    (an unreadable file, or one too small for the crop, would lower the figures).
    """

    train_images: int
    val_images: int
    sources: int
    val_sources: int
    exact: bool
    unit: str


class Images(NamedTuple):
    """What a source opens: ``train (N, C, H, W)`` and ``val (M, C, H, W)`` uint8, and one line for logs."""

    train: np.ndarray
    val: np.ndarray
    description: str


class Source(Protocol):
    """A data source: its config is the ``data`` section of the same ``source`` name (``vqtune.config``)."""

    def sizes(self, cfg: SourceConfig) -> SplitSizes:
        """The sizes :meth:`open` would give for ``cfg``, from headers, file lists and caches only (nothing is
        decoded or written).

        Raises:
            DataError: the source is missing or empty.
        """

    def open(self, cfg: SourceConfig) -> Images:
        """The train and val images of ``cfg``, ``(H, W) = cfg.size``, ``C = cfg.image_channels``.

        Raises:
            DataError: the source is missing, empty, unreadable, or cannot give images of this size.
        """
