"""A run directory: resolved config, metrics.jsonl, checkpoints, reconstruction grid."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping

import yaml

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
RECONSTRUCTIONS = "reconstructions.png"
CODE_USAGE = "code_usage.json"


def fresh_run_dir(requested: Path) -> Path:
    """``requested`` if it is missing or empty, else the first free ``requested-N``: no run is overwritten."""
    requested = Path(requested)
    candidate, n = requested, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = requested.with_name(f"{requested.name}-{n}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def write_config(run_dir: Path, config: Mapping) -> None:
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(dict(config), sort_keys=False))


def append_metrics(run_dir: Path, metrics: Mapping[str, float], name: str = METRICS_FILE) -> None:
    # JSON has no NaN/inf; a diverged value is written as null.
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    with open(run_dir / name, "a") as handle:
        handle.write(json.dumps(clean) + "\n")


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_code_usage(run_dir: Path, counts: list[int]) -> None:
    """How often each code was chosen over the validation split at the last evaluation."""
    (run_dir / CODE_USAGE).write_text(json.dumps({"codebook_size": len(counts), "counts": counts}))


def read_code_usage(run_dir: Path) -> list[int]:
    return json.loads((Path(run_dir) / CODE_USAGE).read_text())["counts"]
