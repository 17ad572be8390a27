"""``vqtune report``: one self-contained HTML file (plotly inlined, images embedded) that works offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Optional

import optuna
import pandas as pd
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from vqtune import __version__
from vqtune import run_dir as rd
from vqtune.report import _figures as figures
from vqtune.study import SPACE_ATTR, artifact_store, mask, trials_frame

BEST = 5


def write_report(study: optuna.Study, storage: optuna.storages.BaseStorage, path: Path,
                 artifact_dir: Optional[Path] = None, storage_url: str = "") -> pd.DataFrame:
    """Write the report of ``study`` to ``path``; returns the trials table it was drawn from."""
    frame = trials_frame(study)
    sections = [
        ("Optimization history", figures.optimization_history(study)),
        ("Intermediate values", figures.intermediate_values(study)),
        ("Parameter importances", figures.param_importances(study)),
        ("Parallel coordinates", figures.parallel_coordinates(study)),
        ("Perplexity vs reconstruction MSE", figures.perplexity_vs_mse(frame)),
        ("Rate vs distortion", figures.rate_distortion(frame)),
    ]
    parts = []
    for i, (title, figure) in enumerate(sections):
        div = figure.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="420px")  # inline once
        parts.append(f'<section class="figure" data-figure="{html.escape(title)}"><h2>{html.escape(title)}</h2>{div}'
                     "</section>")
    store = artifact_store(artifact_dir) if artifact_dir is not None and Path(artifact_dir).exists() else None
    parts.append(_best_trials(study, frame, storage, store))
    states = frame["state"].value_counts().to_dict() if not frame.empty else {}
    summary = ", ".join(f"{n} {s.lower()}" for s, n in states.items()) or "no trials"
    metric = (study.user_attrs.get(SPACE_ATTR) or {}).get("objective", {}).get("metric", "objective")
    document = _PAGE.format(
        title=html.escape(f"vqtune study {study.study_name}"),
        heading=html.escape(f"Study {study.study_name}"),
        meta=html.escape(f"{summary}; objective {metric} ({study.direction.name.lower()}); "
                         f"storage {mask(storage_url) if storage_url else '-'}; vqtune {__version__}"),
        body="\n".join(parts),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return frame


def _best_trials(study: optuna.Study, frame: pd.DataFrame, storage, store) -> str:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = sorted(complete, key=lambda t: t.value, reverse=reverse)[:BEST]
    rows = []
    by_number = frame.set_index("number") if not frame.empty else frame
    for trial in best:
        params = "<br>".join(f"{html.escape(k)} = {html.escape(_short(v))}" for k, v in trial.params.items())
        image = _reconstructions(trial, storage, store)
        attrs = by_number.loc[trial.number]
        rows.append(
            f"<tr><td>{trial.number}</td><td>{trial.value:.5g}</td><td>{params}</td>"
            f"<td>{_short(attrs.get('val_perplexity', ''))}</td><td>{_short(attrs.get('val_psnr', ''))}</td>"
            f"<td>{image}</td></tr>"
        )
    if not rows:
        return '<section id="best-trials"><h2>Best trials</h2><p>No complete trial yet.</p></section>'
    return (
        '<section id="best-trials"><h2>Best trials</h2><table><thead><tr><th>trial</th><th>value</th>'
        "<th>params</th><th>perplexity</th><th>PSNR (dB)</th><th>validation images (top) and reconstructions"
        f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _reconstructions(trial, storage, store) -> str:
    if store is None:
        return "(no artifact store)"
    for meta in get_all_artifact_meta(trial, storage=storage):
        if meta.filename == rd.RECONSTRUCTIONS:
            with store.open_reader(meta.artifact_id) as reader:
                data = base64.b64encode(reader.read()).decode()
            return f'<img class="reconstructions" alt="trial {trial.number} reconstructions" ' \
                   f'src="data:image/png;base64,{data}">'
    return "(none uploaded)"


def _short(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"  # NaN: the trial has no such figure
    return str(value)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ margin-bottom: 0.2rem; }} .meta {{ color: #555; margin-top: 0; }}
section {{ margin: 2rem 0; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.4rem 0.6rem; vertical-align: top; text-align: left; }}
img.reconstructions {{ max-width: 520px; image-rendering: pixelated; }}
</style></head>
<body><h1>{heading}</h1><p class="meta">{meta}</p>
{body}
</body></html>
"""
