"""Checkpoints: weights, optimizer state, config, metrics and version, written atomically, read safely, with a
digest of their content so that a file changed after it was written is called damaged."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, TypedDict

import torch

from vqtune import __version__
from vqtune.errors import CheckpointError

# Bumped when the layout of a checkpoint changes; vqtune versions that share it read each other's files.
CHECKPOINT_FORMAT = 1

log = logging.getLogger("vqtune.train")

_FIX = "use another checkpoint of the run (best.pt or last.pt) or train again"


class _PriorFields(TypedDict):
    prior: dict  # the PriorConfig it was trained with, as JSON
    vqvae_checkpoint: str  # the stage-1 checkpoint whose codes it models (an absolute path)
    codebook_size: int  # K of those codes
    grid: list[int]  # the (bottom) code grid, [height, width]


class PriorFields(_PriorFields, total=False):
    """What a stage-2 (prior) checkpoint holds besides config, epoch, model, optimizer and metrics, under these
    keys on disk; ``top_grid`` and ``top_downsample`` only for a two-level model."""

    top_grid: list[int]  # the top code grid, [height, width]
    top_downsample: int  # the halvings between the top grid and the bottom one


def save_checkpoint(path: Path, **content: Any) -> None:
    """Write ``content`` (tensors, state dicts, plain Python values) to ``path`` atomically.

    The file is written next to its destination and renamed over it, so a crash leaves either the old
    checkpoint or the new one, never half of one. It holds a ``digest`` of everything else in it (see
    :func:`content_digest`), which :func:`load_checkpoint` checks.
    """
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "vqtune_version": __version__, **content}
    payload["digest"] = content_digest(payload)
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
    """Read a checkpoint with ``weights_only=True`` (no code from the file is ever run) and check its digest: a
    flipped bit anywhere in its tensors or fields is a :class:`CheckpointError`. A checkpoint written before
    vqtune wrote digests loads unchecked."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # whatever the unpickler trips on, the file is at fault
        # A pickle that names a global (a function or class to call) asks to run code; any other refusal of
        # the weights-only unpickler (an unknown opcode, a mark never set, say) is a damaged or foreign file.
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
    written = payload.get("digest")
    if written is None:
        log.debug("%s: a checkpoint without a digest (written by an older vqtune): not checked", path)
    elif written != content_digest({k: v for k, v in payload.items() if k != "digest"}):
        raise CheckpointError(f"{path}: damaged checkpoint (its content does not match the digest written with it: "
                              f"the file changed after it was saved); {_FIX}")
    return payload


def content_digest(payload: dict) -> str:
    """blake2b (32 bytes, hex) of ``payload``: each tensor's dtype, shape and bytes in the order the structure
    lists them, then the canonical JSON of the structure with each tensor as its position in that order."""
    digest = hashlib.blake2b(digest_size=32)
    tensors = 0

    def skeleton(value: Any) -> Any:
        nonlocal tensors
        if isinstance(value, torch.Tensor):
            flat = value.detach().to("cpu").contiguous().reshape(-1)
            digest.update(f"{flat.dtype} {tuple(value.shape)};".encode())
            digest.update(memoryview(flat.view(torch.uint8).numpy()))
            tensors += 1
            return {"tensor": tensors - 1}
        if isinstance(value, dict):  # pairs, not an object: keys may be ints (an optimizer's state)
            return {"dict": [[skeleton(k), skeleton(v)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [skeleton(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return {"repr": repr(value)}

    structure = json.dumps(skeleton(payload), separators=(",", ":"))
    digest.update(structure.encode())
    return digest.hexdigest()


@contextlib.contextmanager
def fields_of(path: Path) -> Iterator[None]:
    """Around code that reads a loaded checkpoint's fields into a model: a missing field, or weights that do not
    fit the model its own fields describe, is the file's fault, a :class:`CheckpointError` naming ``path``."""
    try:
        yield
    except KeyError as exc:
        raise CheckpointError(f"{path}: damaged checkpoint (no field {exc.args[0]!r}); {_FIX}") from None
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:300] or exc.__class__.__name__
        raise CheckpointError(f"{path}: damaged checkpoint ({reason}); {_FIX}") from None
