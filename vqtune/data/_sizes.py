"""How large the train and val splits of a data config are, without decoding a folder or writing its cache."""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vqtune.config import DataConfig
from vqtune.data import _cache
from vqtune.data._fashion_mnist import DEFAULT_DIR, _find
from vqtune.data._folder import _image_files
from vqtune.data._skimage_photos import PHOTOS
from vqtune.data._split import capped_sizes, held_out
from vqtune.errors import DataError


class SplitSizes(NamedTuple):
    """The sizes of a data config's splits.

    ``sources`` are what the split is made of: photos or files (their crops stay on one side), Fashion-MNIST's
    images; ``exact`` is False when a folder was counted by its files rather than decoded (an unreadable file, or
    one too small for the crop, would lower the figures).
    """

    train_images: int
    val_images: int
    sources: int
    val_sources: int
    exact: bool


def split_sizes(cfg: DataConfig) -> SplitSizes:
    """The sizes :func:`load_images` would give for ``cfg``; reads headers, file lists and the folder cache only.

    Raises:
        DataError: the source is missing or empty.
    """
    per_source = cfg.crops_per_image if cfg.crop == "random" else 1
    if cfg.source == "fashion-mnist":
        root = Path(cfg.path or os.environ.get("VQTUNE_FASHION_MNIST_DIR") or DEFAULT_DIR).expanduser()
        train, val = (_idx_count(_find(root, split)) for split in ("train", "t10k"))
        n_train, n_val = capped_sizes(train, val, cfg.max_images)
        return SplitSizes(n_train, n_val, train + val, val, True)
    if cfg.source == "skimage-photos":
        sources, exact = len(PHOTOS), True
    else:
        root = cfg.path.expanduser().resolve()
        if not root.is_dir():
            raise DataError(f"data.path: {root} is not a directory; set data.path to a directory of images")
        files = _image_files(root)
        if not files:
            raise DataError(f"data.path: no image under {root}")
        sources, exact = len(files), False
        channels = cfg.channels or 3
        cached = _cache.cache_file(cfg, channels, root, files)
        if cached.exists():
            n_train, n_val = (_npz_length(cached, name) for name in ("train", "val"))
            return SplitSizes(n_train, n_val, sources, held_out(sources, cfg.val_fraction), True)
    val_sources = held_out(sources, cfg.val_fraction)
    if sources == 1:  # one image: its crops are split
        n_val = min(max(1, round(per_source * cfg.val_fraction)), per_source - 1)
        n_train, n_val = capped_sizes(per_source - n_val, n_val, cfg.max_images)
    else:
        n_train, n_val = capped_sizes((sources - val_sources) * per_source, val_sources * per_source, cfg.max_images)
    return SplitSizes(n_train, n_val, sources, val_sources, exact)


def _npz_length(path: Path, name: str) -> int:
    """The first dimension of array ``name`` in the ``.npz`` at ``path``, from its header alone."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as file:
        version = np.lib.format.read_magic(file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return int(read(file)[0][0])


def _idx_count(path: Path) -> int:
    """The image count in an IDX file's header."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
        header = file.read(8)
    if len(header) < 8:
        raise DataError(f"{path}: not an IDX image file (too short); point data.path at the Fashion-MNIST files")
    return int.from_bytes(header[4:8], "big")
