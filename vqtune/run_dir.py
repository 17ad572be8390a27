"""A run directory: the name of every file vqtune writes into one, and their small readers and writers.

Layout (``vqtune train`` and every search trial):

    config.yaml                          the config in force (rewritten on resume)
    metrics.jsonl, last.pt, best.pt      stage 1 (the VQ-VAE): one line per epoch, checkpoints
    prior_metrics.jsonl, prior_last.pt, prior_best.pt    stage 2 (the PixelCNN prior), the same
    reconstructions.png, code_usage.json                  stage 1's validation reconstructions and code counts
    reconstructions-epochNNN.png                         stage 1's reconstructions at an epoch a reporter asked for
    code_usage.png, final_metrics.json, samples.png      written by a search trial for its artifacts
    curves.png, curves-epochNNN.png                      a search trial's metric curves

Imports neither torch, Ray nor Optuna: the trainer, the search layer and the report all read these names.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, NamedTuple

import yaml

CONFIG = "config.yaml"
RECONSTRUCTIONS = "reconstructions.png"
CODE_USAGE = "code_usage.json"
CODE_USAGE_PLOT = "code_usage.png"
FINAL_METRICS = "final_metrics.json"
SAMPLES = "samples.png"
CURVES = "curves.png"


def epoch_file(name: str, epoch: int) -> str:
    """The name of an epoch's copy of a picture: ``reconstructions.png`` -> ``reconstructions-epoch003.png``."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}-epoch{epoch:03d}{dot}{suffix}"


class StageFiles(NamedTuple):
    """The files of one training stage: its last and best checkpoints and its per-epoch metrics."""

    last: str
    best: str
    metrics: str


VQVAE = StageFiles("last.pt", "best.pt", "metrics.jsonl")
PRIOR = StageFiles("prior_last.pt", "prior_best.pt", "prior_metrics.jsonl")
STAGES = {"vqvae": VQVAE, "prior": PRIOR}


def codes_cache(checkpoint: Path, key: str) -> Path:
    """Where the code grids encoded by ``checkpoint`` are cached: next to it, keyed by ``key``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"codes-{checkpoint.stem}-{key}.pt")


def fresh_run_dir(requested: Path) -> Path:
    """``requested`` if it is missing or empty, else the first free ``requested-N``: no run is overwritten."""
    requested = Path(requested)
    candidate, n = requested, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = requested.with_name(f"{requested.name}-{n}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def open_run_dir(requested: Path, resume: bool) -> Path:
    """The directory a run writes: ``requested`` itself when resuming a run that left a checkpoint there,
    else a fresh one (see :func:`fresh_run_dir`)."""
    requested = Path(requested)
    if resume and any((requested / files.last).exists() for files in STAGES.values()):
        return requested
    return fresh_run_dir(requested)


def write_config(run_dir: Path, config: Mapping) -> None:
    (Path(run_dir) / CONFIG).write_text(yaml.safe_dump(dict(config), sort_keys=False))


def write_metrics(run_dir: Path, name: str, history: list[Mapping[str, float]]) -> None:
    """Write ``history`` as the whole metrics file ``name``: a resumed run's checkpoint is the truth."""
    path = Path(run_dir) / name
    path.unlink(missing_ok=True)
    for metrics in history:
        append_metrics(run_dir, name, metrics)


def append_metrics(run_dir: Path, name: str, metrics: Mapping[str, float]) -> None:
    # JSON has no NaN/inf; a diverged value is written as null.
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    with open(Path(run_dir) / name, "a") as handle:
        handle.write(json.dumps(clean) + "\n")


def write_code_usage(run_dir: Path, counts: list[int]) -> None:
    """How often each code was chosen over the validation split at the last evaluation."""
    (Path(run_dir) / CODE_USAGE).write_text(json.dumps({"codebook_size": len(counts), "counts": counts}))


def read_code_usage(run_dir: Path) -> list[int]:
    return json.loads((Path(run_dir) / CODE_USAGE).read_text())["counts"]
