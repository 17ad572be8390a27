"""Checkpoints: weights, optimizer state, config, metrics and version, written atomically, read safely."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from vqtune import __version__
from vqtune.errors import CheckpointError

# Bumped when the layout of a checkpoint changes; vqtune versions that share it read each other's files.
CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, **content: Any) -> None:
    """Write ``content`` (tensors, state dicts, plain Python values) to ``path`` atomically.

    The file is written next to its destination and renamed over it, so a crash leaves either the old
    checkpoint or the new one, never half of one.
    """
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "vqtune_version": __version__, **content}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` (no code from the file is ever run)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        # A pickle that names a global (a function or class to call) asks to run code; any other refusal of
        # the weights-only unpickler (an unknown opcode, say) is a damaged or foreign file.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and found:
            what = f"it would call {found.group(1)}"
            raise CheckpointError(
                f"{path}: refused to load: the file asks to run code ({what}); vqtune loads checkpoints with "
                "weights_only=True and runs no code from them: use a checkpoint written by vqtune"
            ) from None
        reason = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise CheckpointError(
            f"{path}: not a readable vqtune checkpoint ({reason}); the file may be truncated - "
            "use another checkpoint of the run"
        ) from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path}: not a vqtune checkpoint (no format field)")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format']} written by vqtune "
            f"{payload.get('vqtune_version', '?')}; this is vqtune {__version__}, which reads format "
            f"{CHECKPOINT_FORMAT}: load it with that vqtune version or retrain"
        )
    return payload
