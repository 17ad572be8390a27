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
from vqtune.study import (ARTIFACT_ERROR_ATTR, PRIOR_WARNING_ATTR, SPACE_ATTR, artifact_store, best_trials,
                          goal_metrics, mask, trials_frame)

BEST = 5


def write_report(study: optuna.Study, storage: optuna.storages.BaseStorage, path: Path,
                 artifact_dir: Optional[Path] = None, storage_url: str = "") -> pd.DataFrame:
    """Write the report of ``study`` to ``path``; returns the trials table it was drawn from."""
    frame = trials_frame(study)
    recorded = study.user_attrs.get(SPACE_ATTR)
    metrics = goal_metrics(recorded) if recorded else [f"objective {i}" for i in range(len(study.directions))]
    if len(study.directions) > 1:
        progress = [("Pareto front", figures.pareto_front_of(study, metrics))]
    else:
        progress = [("Optimization history", figures.optimization_history(study)),
                    ("Intermediate values", figures.intermediate_values(study))]
    progress.append(("Metric curves", figures.metric_curves(study, metrics[0])))
    sections = [
        *progress,
        ("Parameter importances", figures.param_importances(study, metrics[0])),
        ("Parallel coordinates", figures.parallel_coordinates(study, metrics[0])),
        ("Perplexity vs reconstruction MSE", figures.perplexity_vs_mse(frame)),
        ("Active codes vs codebook size", figures.active_codes_vs_k(frame)),
        ("Rate vs distortion", figures.rate_distortion(frame)),
        ("Bits per dimension: rate and distortion", figures.bits_per_dim_parts(frame)),
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
    goals = ", ".join(f"{m} ({d.name.lower()})" for m, d in zip(metrics, study.directions))
    document = _PAGE.format(
        title=html.escape(f"vqtune study {study.study_name}"),
        heading=html.escape(f"Study {study.study_name}"),
        meta=html.escape(f"{summary}; {'objectives' if len(metrics) > 1 else 'objective'} {goals}; "
                         f"storage {mask(storage_url) if storage_url else '-'}; vqtune {__version__}"),
        body="\n".join(parts),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return frame


def _best_trials(study: optuna.Study, frame: pd.DataFrame, storage, store) -> str:
    """The best feasible trials (single objective), or the Pareto-optimal ones, with their reconstructions; a line
    under each whose prior is worse than the unigram prior, and a list of the other trials where it is."""
    if len(study.directions) > 1:
        best, title = best_trials(study), "Pareto-optimal trials"
    else:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
        reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
        best, title = sorted(feasible, key=lambda t: t.value, reverse=reverse)[:BEST], "Best trials"
    rows = []
    by_number = frame.set_index("number") if not frame.empty else frame
    # trial number -> its prior warning (a line of text from the study: escaped where it is written)
    warnings = {} if PRIOR_WARNING_ATTR not in frame else \
        {int(n): str(w) for n, w in frame[["number", PRIOR_WARNING_ATTR]].dropna().itertuples(index=False) if w}
    for trial in best:
        params = "<br>".join(f"{html.escape(k)} = {_cell(v)}" for k, v in trial.params.items())
        images = "".join(_image(trial, storage, store, name) for name in (rd.RECONSTRUCTIONS, rd.SAMPLES))
        missing = trial.user_attrs.get(ARTIFACT_ERROR_ATTR)  # why a picture is not there (a full disk, say)
        if missing:
            images += f'<p class="artifact-error">not stored: {html.escape(str(missing))}</p>'
        attrs = by_number.loc[trial.number]
        values = html.escape(" / ".join(f"{v:.5g}" for v in trial.values))
        rows.append(
            f"<tr><td>{trial.number}</td><td>{values}</td><td>{params}</td>"
            f"<td>{_cell(attrs.get('val_perplexity', ''))}</td><td>{_cell(attrs.get('val_psnr', ''))}</td>"
            f"<td>{_cell(attrs.get('val_bits_per_dim', ''))}</td><td>{images or '(none uploaded)'}</td></tr>"
        )
        if warnings.get(trial.number):  # under its row: a bits/dim that the prior should have beaten
            rows.append(f'<tr class="prior-warning"><td colspan="7">trial {trial.number}: '
                        f"{html.escape(warnings[trial.number])}</td></tr>")
    shown = {trial.number for trial in best}
    others = "".join(f"<li>trial {number}: {html.escape(warning)}</li>"
                     for number, warning in warnings.items() if number not in shown)
    others = f'<p>Other trials whose prior is worse than the unigram prior:</p><ul class="prior-warning">{others}</ul>' \
        if others else ""
    if not rows:
        return f'<section id="best-trials"><h2>{title}</h2><p>No complete trial yet.</p>{others}</section>'
    return (
        f'<section id="best-trials"><h2>{title}</h2><table><thead><tr><th>trial</th><th>value</th>'
        "<th>params</th><th>perplexity</th><th>PSNR (dB)</th><th>bits/dim</th><th>validation images (top) and "
        f"reconstructions; prior samples</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{others}</section>"
    )


def _image(trial, storage, store, name: str) -> str:
    """The trial's artifact ``name`` (a PNG) as an embedded image; empty when it has none."""
    if store is None:
        return ""
    for meta in get_all_artifact_meta(trial, storage=storage):
        if meta.filename == name:
            with store.open_reader(meta.artifact_id) as reader:
                data = base64.b64encode(reader.read()).decode()
            return (f'<img class="reconstructions" alt="trial {trial.number} {html.escape(name)}" '
                    f'src="data:image/png;base64,{data}">')
    return ""


def _short(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"  # NaN: the trial has no such figure
    return str(value)


def _cell(value) -> str:
    """A value read from the study (a parameter, an attribute: any text a database holds), escaped for HTML."""
    return html.escape(_short(value))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ margin-bottom: 0.2rem; }} .meta {{ color: #555; margin-top: 0; }}
section {{ margin: 2rem 0; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.4rem 0.6rem; vertical-align: top; text-align: left; }}
img.reconstructions {{ max-width: 520px; image-rendering: pixelated; }}
.prior-warning {{ color: #8a4b00; }}
</style></head>
<body><h1>{heading}</h1><p class="meta">{meta}</p>
{body}
</body></html>
"""
