"""The ``fashion-mnist`` source: its IDX files, the official train split for training, t10k for validation."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
import numpy as np

from vqtune.config import FashionMnistConfig
from vqtune.data._memory import check_fits
from vqtune.data._protocol import Images, SplitSizes
from vqtune.data._split import cap_images, capped_sizes
from vqtune.errors import DataError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_UBYTE_3D = 0x00000803  # IDX magic: unsigned bytes, three dimensions


def _root(cfg: FashionMnistConfig) -> Path:
    return Path(cfg.path or os.environ.get("VQTUNE_FASHION_MNIST_DIR") or DEFAULT_DIR).expanduser()


def _find(root: Path, split: str) -> Path:
    name = f"{split}-images-idx3-ubyte"
    for path in (root / f"{name}.gz", root / name):
        if path.is_file():
            return path
    raise DataError(
        f"fashion-mnist: no IDX files in {root} ({name}.gz or {name} is missing); install the Debian package "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or set data.path / VQTUNE_FASHION_MNIST_DIR"
    )


def read_idx_images(path: Path) -> np.ndarray:
    """The images of one IDX file (gzip-compressed or raw): ``uint8 (N, h, w)``."""
    try:
        with (gzip.open if path.suffix == ".gz" else io.open)(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read this IDX file ({exc}); replace it with an intact copy") from exc
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) < 16 or magic != _IDX_UBYTE_3D:
        raise DataError(
            f"{path}: not an IDX image file (magic {magic:#010x}, expected {_IDX_UBYTE_3D:#010x}); "
            "point data.path at the Fashion-MNIST *-images-idx3-ubyte files"
        )
    n, height, width = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * height * width:
        raise DataError(
            f"{path}: the header announces {n} images of {height}x{width} ({n * height * width} bytes) but "
            f"{len(raw) - 16} bytes follow; the file is truncated or damaged, replace it"
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, height, width)


def sizes(cfg: FashionMnistConfig) -> SplitSizes:
    """The sizes :func:`open` gives for ``cfg``, from the two files' headers (exact)."""
    train, val = (_idx_count(_find(_root(cfg), split)) for split in ("train", "t10k"))
    n_train, n_val = capped_sizes(train, val, cfg.max_images)
    return SplitSizes(n_train, n_val, train + val, val, True, "image")


def _idx_count(path: Path) -> int:
    """The image count in an IDX file's header."""
    with (gzip.open if path.suffix == ".gz" else io.open)(path, "rb") as file:
        header = file.read(8)
    if len(header) < 8:
        raise DataError(f"{path}: not an IDX image file (too short); point data.path at the Fashion-MNIST files")
    return int.from_bytes(header[4:8], "big")


def open(cfg: FashionMnistConfig) -> Images:
    """``train (60000, C, H, W)``, ``val (10000, C, H, W)`` uint8 (fewer under ``max_images``), description.

    The official split is kept: ``val_fraction`` is not used. The 28x28 images are zero-padded, centered, to
    ``(H, W) = cfg.size`` (32 suits three halvings); a grey image is repeated for 3 channels.
    """
    root, channels = _root(cfg), cfg.image_channels
    train_path, val_path = _find(root, "train"), _find(root, "t10k")
    train, val = read_idx_images(train_path), read_idx_images(val_path)
    if train.shape[1:] != val.shape[1:]:
        raise DataError(
            f"fashion-mnist: {train_path} holds {train.shape[1]}x{train.shape[2]} images but {val_path} "
            f"{val.shape[1]}x{val.shape[2]}; point data.path at matching Fashion-MNIST files"
        )
    train, val = cap_images(train, val, cfg.max_images, cfg.split_seed)
    (height, width), (h, w) = cfg.size, train.shape[1:]
    if height < h or width < w:
        raise DataError(
            f"data.resolution {height}x{width} is smaller than the {h}x{w} fashion-mnist images; "
            f"use at least {max(h, w)} (32 allows three halvings)"
        )
    check_fits(cfg, len(train) + len(val), channels, per_source=1)
    top, left = (height - h) // 2, (width - w) // 2

    def pad(images: np.ndarray) -> np.ndarray:
        out = np.zeros((len(images), channels, height, width), np.uint8)
        out[:, :, top : top + h, left : left + w] = images[:, None]
        return out

    description = (
        f"fashion-mnist {root}: {len(train)} train / {len(val)} val images of {height}x{width}x{channels}"
        f" (official split, {h}x{w} originals centered)"
    )
    return Images(pad(train), pad(val), description)
