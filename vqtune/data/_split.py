"""Deterministic randomness of the data: per-image crop generators, the train/val split, the max_images cap.

Everything is keyed by ``(split_seed, image name)`` rather than by position, so the result does not depend
on file order or thread scheduling, and adding one image to a folder moves few others across the split.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Optional, Sequence, Tuple

import numpy as np

from vqtune.config import SourceConfig
from vqtune.data._protocol import SplitSizes
from vqtune.errors import DataError

log = logging.getLogger("vqtune.data")


def _hash(seed: int, purpose: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{purpose}/{key}".encode()).digest()[:8], "big")


def crop_rng(seed: int, key: str) -> np.random.Generator:
    """The generator of the random crops of the image named ``key``."""
    return np.random.default_rng(_hash(seed, "crops", key))


def _n_val(n: int, val_fraction: float) -> int:
    return min(max(1, round(n * val_fraction)), n - 1)


def split_images(
    groups: Sequence[Tuple[str, np.ndarray]],
    val_fraction: float,
    seed: int,
    max_images: Optional[int],
    where: str,
) -> Tuple[np.ndarray, np.ndarray]:
    """Split images between train and val so that the crops of one source image stay on one side.

    Args:
        groups: ``(name, crops)`` per source image, crops ``uint8 (K_i, C, H, W)``.
        where: the source, for messages.

    Returns:
        ``train (N, C, H, W)`` and ``val (M, C, H, W)``, with ``N + M <= max_images``.
    """
    if len(groups) == 1:
        name, crops = groups[0]
        if len(crops) < 2:
            raise DataError(
                f"{where}: a single image with a single crop cannot be split into train and val; "
                "add images or set data.crop=random"
            )
        log.warning(
            "%s: only one image (%s); its %d crops are split between train and val, which then overlap in space",
            where, name, len(crops),
        )  # fmt: skip
        order = np.random.default_rng(_hash(seed, "split", name)).permutation(len(crops))
        n_val = _n_val(len(crops), val_fraction)
        train, val = crops[np.sort(order[n_val:])], crops[np.sort(order[:n_val])]
    else:
        ranked = sorted(range(len(groups)), key=lambda i: _hash(seed, "split", groups[i][0]))
        held_out = set(ranked[: _n_val(len(groups), val_fraction)])
        train = np.concatenate([crops for i, (_, crops) in enumerate(groups) if i not in held_out])
        val = np.concatenate([crops for i, (_, crops) in enumerate(groups) if i in held_out])
    return cap_images(train, val, max_images, seed)


def cap_images(
    train: np.ndarray, val: np.ndarray, max_images: Optional[int], seed: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_images`` of ``train (N, ...)`` and ``val (M, ...)`` together, in their proportion."""
    n_train, n_val = capped_sizes(len(train), len(val), max_images)
    if (n_train, n_val) == (len(train), len(val)):
        return train, val
    rng = np.random.default_rng(_hash(seed, "cap", ""))

    def keep(images: np.ndarray, n: int) -> np.ndarray:
        return images[np.sort(rng.choice(len(images), n, replace=False))]

    return keep(train, n_train), keep(val, n_val)


def capped_sizes(n_train: int, n_val: int, max_images: Optional[int]) -> Tuple[int, int]:
    """How many train and val images :func:`cap_images` keeps of ``n_train`` and ``n_val``."""
    total = n_train + n_val
    if max_images is None or total <= max_images:
        return n_train, n_val
    # Proportional, but at least one image on each side and no more than either side holds.
    low, high = max(1, max_images - n_train), min(n_val, max_images - 1)
    kept_val = int(np.clip(round(max_images * n_val / total), low, high))
    return max_images - kept_val, kept_val


def held_out(n_sources: int, val_fraction: float) -> int:
    """How many of ``n_sources`` source images :func:`split_images` holds out for validation (one source: its
    crops are split instead, and it counts as one)."""
    return 1 if n_sources == 1 else _n_val(n_sources, val_fraction)


def crop_sizes(cfg: SourceConfig, sources: int, exact: bool, unit: str) -> SplitSizes:
    """The sizes :func:`split_images` gives for ``sources`` source images of ``cfg``'s crops, each yielding its
    crops (one image: its crops are split)."""
    per_source = cfg.crops_per_image if cfg.crop == "random" else 1
    val_sources = held_out(sources, cfg.val_fraction)
    if sources == 1:
        n_val = _n_val(per_source, cfg.val_fraction)
        n_train, n_val = capped_sizes(per_source - n_val, n_val, cfg.max_images)
    else:
        n_train, n_val = capped_sizes((sources - val_sources) * per_source, val_sources * per_source, cfg.max_images)
    return SplitSizes(n_train, n_val, sources, val_sources, exact, unit)
