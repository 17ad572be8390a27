"""A trial's artifacts in the study's artifact store: reconstructions, a code-usage histogram, prior samples,
final metrics.

They are uploaded while the trial still runs (Optuna refuses uploads to finished trials), and the
dashboard shows them next to the trial.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Optional

import optuna
from optuna.artifacts import upload_artifact
from PIL import Image, ImageDraw

from vqtune import run_dir as rd
from vqtune.study import ArtifactStore


def upload_trial_artifacts(trial: optuna.Trial, store: ArtifactStore, run_dir: Path,
                           metrics: Mapping[str, float], state: str) -> list[str]:
    """Upload what ``run_dir`` holds for the trial; returns the artifact ids."""
    run_dir = Path(run_dir)
    final = {"trial": trial.number, "state": state, "params": trial.params,
             **{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}}
    (run_dir / rd.FINAL_METRICS).write_text(json.dumps(final, indent=2))
    files = [run_dir / rd.FINAL_METRICS]
    files += [run_dir / name for name in (rd.RECONSTRUCTIONS, rd.SAMPLES) if (run_dir / name).exists()]
    if (run_dir / rd.CODE_USAGE).exists():
        histogram = run_dir / rd.CODE_USAGE_PLOT
        usage_histogram(rd.read_code_usage(run_dir), metrics.get("val_perplexity")).save(histogram)
        files.append(histogram)
    return [upload_artifact(artifact_store=store, file_path=str(f), study_or_trial=trial) for f in files]


def usage_histogram(counts: list[int], perplexity: Optional[float] = None, width: int = 640,
                    height: int = 240) -> Image.Image:
    """Bars of code usage over the validation split, most used code first (a collapsed codebook shows
    as a few tall bars and a flat tail)."""
    ranked = sorted(counts, reverse=True)
    k, total, used = len(ranked), max(sum(ranked), 1), sum(c > 0 for c in ranked)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    top, bottom, left, right = 28, height - 16, 8, width - 8
    peak = max(ranked[0], 1)
    bar = (right - left) / k
    for i, count in enumerate(ranked):
        if count:
            x0 = left + i * bar
            draw.rectangle([x0, bottom - (bottom - top) * count / peak, x0 + max(bar - 1, 1), bottom],
                           fill=(60, 110, 180))
    draw.line([left, bottom, right, bottom], fill="black")
    title = f"code usage, val split: {used}/{k} codes used"
    if perplexity is not None:
        title += f", perplexity {perplexity:.1f}"
    draw.text((left, 6), title, fill="black")
    draw.text((left, bottom + 2), f"codes by usage (most used: {ranked[0] / total:.1%} of latents)", fill="gray")
    return image
