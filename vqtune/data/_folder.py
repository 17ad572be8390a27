"""The ``folder`` source: a directory tree of JPEG/PNG/WebP/BMP files, decoded in parallel, split by file,
cached on disk."""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

from vqtune.config import FolderConfig
from vqtune.data import _cache
from vqtune.data._decode import crop_image, open_image
from vqtune.data._memory import check_fits
from vqtune.data._protocol import Images, SplitSizes
from vqtune.data._split import crop_rng, crop_sizes, held_out, split_images
from vqtune.errors import DataError

log = logging.getLogger("vqtune.data")

EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".webp")
# What Pillow raises for a corrupt, truncated or unsupported file; such files are skipped, not fatal.
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError)


def _image_files(root: Path) -> List[Path]:
    """Candidate files under ``root`` in a fixed order; symlinked directories are not followed."""
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        files += [Path(directory, n) for n in sorted(names) if n.lower().endswith(EXTENSIONS)]
    return [f for f in files if f.is_file()]


def _crops(path: Path, key: str, cfg: FolderConfig, channels: int) -> np.ndarray:
    img = open_image(path, cfg.size, cfg.crop, cfg.resize, channels)
    return crop_image(img, cfg.size, cfg.crop, cfg.crops_per_image, cfg.resize, crop_rng(cfg.split_seed, key))


def _decode_all(
    root: Path, files: List[Path], keys: List[str], cfg: FolderConfig, channels: int
) -> Tuple[List[Tuple[str, np.ndarray]], List[str]]:
    """``(name, crops (K, C, H, W))`` per readable file, and ``"path: reason"`` per unreadable one."""
    groups: List[Tuple[str, np.ndarray]] = []
    skipped: List[str] = []
    # Warning filters are process-wide, so this also turns the workers' bomb warnings into errors; it stays
    # on until the pool has stopped.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        pool = ThreadPoolExecutor(max_workers=os.cpu_count())  # Pillow releases the GIL while decoding
        try:
            futures = [pool.submit(_crops, f, k, cfg, channels) for f, k in zip(files, keys)]
            for path, key, future in zip(files, keys, futures):
                try:
                    groups.append((key, future.result()))
                except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                    raise DataError(
                        f"{path}: {exc} Remove the file from {root}, or shrink it below "
                        f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels"
                    ) from exc
                except _UNREADABLE as exc:
                    skipped.append(f"{path}: {exc}")
        finally:
            pool.shutdown(cancel_futures=True)
    return groups, skipped


def _decode(root: Path, files: List[Path], cfg: FolderConfig, channels: int) -> _cache.Decoded:
    keys = [f.relative_to(root).as_posix() for f in files]
    groups, skipped = _decode_all(root, files, keys, cfg, channels)
    accepted = " ".join(EXTENSIONS)
    warning = f"skipped {len(skipped)} unreadable files under {root} (first: {skipped[0]})" if skipped else ""
    if not groups:
        reason = f"{warning}; " if skipped else ""
        raise DataError(f"data.path: no readable image under {root} ({reason}accepted extensions: {accepted})")
    train, val = split_images(groups, cfg.val_fraction, cfg.split_seed, cfg.max_images, f"folder {root}")
    height, width = cfg.size
    description = (
        f"folder {root}: {len(groups)} images -> {len(train)} train / {len(val)} val "
        f"{cfg.crop} crops of {height}x{width}x{channels}"
    )
    return _cache.Decoded(train, val, description, warning)


def _root(cfg: FolderConfig) -> Path:
    root = cfg.path.expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"data.path: {root} is not a directory; set data.path to a directory of images")
    return root


def sizes(cfg: FolderConfig) -> SplitSizes:
    """The sizes :func:`open` gives for ``cfg``: read from its cache entry when there is one (exact), else counted
    from the candidate files (not exact: an unreadable file, or one too small for the crop, lowers them)."""
    root = _root(cfg)
    files = _image_files(root)
    if not files:
        raise DataError(f"data.path: no image under {root}")
    cached = _cache.cache_file(cfg, cfg.image_channels, root, files)
    if cached.exists():
        n_train, n_val = (_npz_length(cached, name) for name in ("train", "val"))
        return SplitSizes(n_train, n_val, len(files), held_out(len(files), cfg.val_fraction), True, "file")
    return crop_sizes(cfg, len(files), exact=False, unit="file")


def _npz_length(path: Path, name: str) -> int:
    """The first dimension of array ``name`` in the ``.npz`` at ``path``, from its header alone."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as file:
        version = np.lib.format.read_magic(file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return int(read(file)[0][0])


def open(cfg: FolderConfig) -> Images:
    """Crops of every image under ``cfg.path``: ``train (N, C, H, W)``, ``val (M, C, H, W)`` uint8, description.

    Files are split between train and val, never their crops. The result is cached on disk (``cfg.cache_dir``,
    else ``$VQTUNE_CACHE_DIR``, else ``~/.cache/vqtune``); any change of the files or settings misses the cache.
    """
    root = _root(cfg)
    channels = cfg.image_channels
    files = _image_files(root)
    check_fits(cfg, len(files), channels)
    cache_file = _cache.cache_file(cfg, channels, root, files)
    decoded = _cache.read(cache_file)
    if decoded is None:
        decoded = _decode(root, files, cfg, channels)
        _cache.write(cache_file, decoded)
    else:
        log.info("%s: read from the cache %s", decoded.description, cache_file)
    if decoded.warning:
        log.warning(decoded.warning)
    return Images(decoded.train, decoded.val, decoded.description)
