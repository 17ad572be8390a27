"""A trial's artifacts in the study's artifact store: reconstructions, a code-usage histogram, prior samples,
its metric curves, final metrics.

They are uploaded while the trial still runs (Optuna refuses uploads to finished trials), and the
dashboard shows them next to the trial. Each is recorded only once it is whole in the store; one that could
not be written (a full disk) is not recorded at all, and the trial says why in its ``artifact_error``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Optional

import optuna
from PIL import Image, ImageDraw

from vqtune import run_dir as rd
from vqtune.study import ArtifactStore


def upload_trial_artifacts(trial: optuna.Trial, store: ArtifactStore, run_dir: Path,
                           metrics: Mapping[str, float], state: str,
                           stages: Optional[Mapping[str, Mapping]] = None) -> list[str]:
    """Upload what ``run_dir`` holds for the trial; returns the artifact ids. ``stages``: which stage's epoch each
    of ``metrics`` comes from (:attr:`vqtune.train.FitResult.final_stages`), written into final_metrics.json.
    An OSError (no space left) stops at the file that could not be written, which is not recorded."""
    run_dir = Path(run_dir)
    final = {"trial": trial.number, "state": state, "params": trial.params,
             **{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}}
    if stages:
        final["stages"] = {stage: dict(part) for stage, part in stages.items()}
    (run_dir / rd.FINAL_METRICS).write_text(json.dumps(final, indent=2))
    files = [run_dir / rd.FINAL_METRICS]
    files += [run_dir / name for name in (rd.RECONSTRUCTIONS, rd.SAMPLES, rd.CURVES) if (run_dir / name).exists()]
    if (run_dir / rd.CODE_USAGE).exists():
        histogram = run_dir / rd.CODE_USAGE_PLOT
        usage_histogram(rd.read_code_usage(run_dir), metrics.get("val_perplexity")).save(histogram)
        files.append(histogram)
    return [store.upload(trial, f) for f in files]


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


# What a metric-curves picture shows first: the figures most searches are judged by.
_FIRST = ("val_recon_mse", "train_recon_mse", "val_bits_per_dim", "val_perplexity", "val_usage", "val_nll",
          "train_nll", "val_psnr")
_SKIP = ("epoch",)


def curves_image(series: Mapping[str, list], first: Optional[str] = None, columns: int = 4, panel=(240, 150)
                 ) -> Image.Image:
    """Small panels, one per metric of ``series`` (``epoch`` -> epochs, metric -> one value or None per
    epoch), the metric ``first`` (the objective) leading: each its curve over the epochs and its last value."""
    epochs = series.get("epoch", [])
    names = [n for n in series if n not in _SKIP and any(v is not None for v in series[n])]
    order = {name: i for i, name in enumerate(((first,) if first else ()) + _FIRST)}
    names.sort(key=lambda n: (order.get(n, len(order)), n))
    rows = max(1, -(-len(names) // columns))
    width, height = panel
    image = Image.new("RGB", (columns * width, rows * height), "white")
    draw = ImageDraw.Draw(image)
    for i, name in enumerate(names):
        x0, y0 = (i % columns) * width, (i // columns) * height
        points = [(e, v) for e, v in zip(epochs, series[name]) if v is not None and math.isfinite(v)]
        last = points[-1][1] if points else None
        draw.text((x0 + 6, y0 + 4), f"{name}: {last:.4g}" if last is not None else name, fill="black")
        left, right, top, bottom = x0 + 40, x0 + width - 8, y0 + 22, y0 + height - 18
        draw.rectangle([left, top, right, bottom], outline=(200, 200, 200))
        if not points:
            continue
        low, high = min(v for _, v in points), max(v for _, v in points)
        first_epoch, last_epoch = points[0][0], points[-1][0]
        span_e, span_v = max(last_epoch - first_epoch, 1), (high - low) or 1.0
        xy = [(left + (right - left) * (e - first_epoch) / span_e, bottom - (bottom - top) * (v - low) / span_v)
              for e, v in points]
        if len(xy) > 1:
            draw.line(xy, fill=(60, 110, 180), width=2)
        for x, y in xy[-1:] if len(xy) > 1 else xy:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(60, 110, 180))
        draw.text((x0 + 2, top), f"{high:.3g}", fill="gray")
        draw.text((x0 + 2, bottom - 10), f"{low:.3g}", fill="gray")
        draw.text((left, bottom + 3), f"epoch {first_epoch}", fill="gray")
        draw.text((right - 50, bottom + 3), f"{last_epoch}", fill="gray")
    return image
