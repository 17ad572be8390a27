"""What a dataset will occupy in memory, stated before it is built, and refused when it cannot fit."""

from __future__ import annotations

import os
from typing import Optional

from vqtune.config import SourceConfig
from vqtune.errors import DataError

# Building the dataset holds each image's crops and then their concatenation: about twice the final tensor.
PEAK_FACTOR = 2.0


def dataset_bytes(cfg: SourceConfig, sources: int, channels: int, per_source: Optional[int] = None) -> int:
    """Bytes of the uint8 (N, C, H, W) train and val tensors built from ``sources`` images (or, for a source of
    fixed images, ``per_source=1``): N = sources x crops per image, capped by ``data.max_images``."""
    crops = per_source if per_source is not None else (cfg.crops_per_image if cfg.crop == "random" else 1)
    images = sources * crops
    if cfg.max_images is not None:
        images = min(images, cfg.max_images)
    height, width = cfg.size
    return images * channels * height * width


def available_bytes() -> Optional[int]:
    """Memory the kernel says a new allocation can have without swapping (Linux ``MemAvailable``); None when
    unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(cfg: SourceConfig, sources: int, channels: int, per_source: Optional[int] = None,
               available: Optional[int] = None) -> int:
    """The dataset's size in bytes; a one-line DataError naming the settings to lower when building it would not
    fit in the memory available now (instead of the process being killed half-way)."""
    needed = dataset_bytes(cfg, sources, channels, per_source)
    available = available_bytes() if available is None else available
    if available is not None and needed * PEAK_FACTOR > available:
        height, width = cfg.size
        crops = per_source if per_source is not None else (cfg.crops_per_image if cfg.crop == "random" else 1)
        raise DataError(
            f"data: {sources} images x {crops} crops of {height}x{width}x{channels} need {human(needed)} of uint8 "
            f"images ({human(needed * PEAK_FACTOR)} while they are built) but {human(available)} of memory is "
            "available; lower data.resolution, data.crops_per_image or data.max_images"
        )
    return needed


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
