"""On-disk cache of a decoded folder: one uncompressed ``.npz`` per (files, settings), written atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from vqtune.config import FolderConfig

log = logging.getLogger("vqtune.data")

# Bump when decoding changes what the same files and settings produce, so that old entries miss.
_FORMAT = 1


class Decoded(NamedTuple):
    """A decoded folder: ``train (N, C, H, W)`` and ``val (M, C, H, W)`` uint8, and what to tell the user."""

    train: np.ndarray
    val: np.ndarray
    description: str
    warning: str


def cache_file(cfg: FolderConfig, channels: int, root: Path, files: Sequence[Path]) -> Path:
    """Where the folder ``root`` with these candidate ``files`` and settings is cached.

    The key covers each file's relative path, size and mtime, so editing, touching, adding or removing an
    image misses the cache; so does any setting that changes the output.
    """
    stats = []
    for f in files:
        st = f.stat()
        stats.append((f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    settings = cfg.model_dump(
        mode="json",
        include={"crop", "crops_per_image", "resize", "val_fraction", "split_seed", "max_images"},
    )
    key = json.dumps([_FORMAT, str(root), stats, cfg.size, channels, settings], sort_keys=True)
    directory = cfg.cache_dir or os.environ.get("VQTUNE_CACHE_DIR") or Path.home() / ".cache" / "vqtune"
    return Path(directory).expanduser() / f"folder-{hashlib.sha256(key.encode()).hexdigest()}.npz"


def read(path: Path) -> Optional[Decoded]:
    """The cached entry, or None when it is missing or unreadable (a damaged entry is simply decoded again)."""
    try:
        with np.load(path) as npz:
            decoded = Decoded(npz["train"], npz["val"], str(npz["description"]), str(npz["warning"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring damaged cache file %s (%s); decoding again", path, exc)
        return None
    train, val = decoded.train, decoded.val
    if train.dtype != np.uint8 or val.dtype != np.uint8 or train.ndim != 4 or val.shape[1:] != train.shape[1:]:
        log.warning("ignoring damaged cache file %s (unexpected arrays); decoding again", path)
        return None
    return decoded


def write(path: Path, decoded: Decoded) -> None:
    """Store ``decoded`` at ``path``; readers never see a partial file. A failure only costs the next decode."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as file:
            tmp = Path(file.name)
            np.savez(file, **decoded._asdict())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        log.warning("could not write the data cache %s (%s); set data.cache_dir to a writable directory", path, exc)
