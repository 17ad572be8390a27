"""The report's figures: Optuna's plotly figures where Optuna has one, the VQ-VAE-specific ones here."""

from __future__ import annotations

import html
import re
import warnings

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState

from vqtune.study import PRUNED_BY_ATTR, SERIES_ATTR
from optuna.visualization import (
    plot_intermediate_values,
    plot_optimization_history,
    plot_parallel_coordinate,
    plot_param_importances,
    plot_pareto_front,
)

STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728", "RUNNING": "#7f7f7f"}


def _label(text) -> str:
    """``text`` read from a study, shown as it is: plotly reads a subset of HTML in its labels and hover text."""
    return html.escape(str(text), quote=False)


def _literal(figure: go.Figure) -> go.Figure:
    """One of Optuna's figures with every text in it escaped (parameter names and values, user attributes, in hover
    text, labels and tick texts), but the line breaks and hover boxes Optuna writes itself (``<br>``, ``<extra>``):
    what came from the study is shown as it is."""
    def escaped(value):
        if isinstance(value, str):
            return _OPTUNA_TAGS.sub(r"<\1>", _label(value))
        if isinstance(value, dict):
            return {key: item if key == "template" else escaped(item) for key, item in value.items()}
        return [escaped(item) for item in value] if isinstance(value, (list, tuple)) else value

    return go.Figure(escaped(figure.to_plotly_json()))


_OPTUNA_TAGS = re.compile(r"&lt;(br|extra|/extra)&gt;")


def optimization_history(study: optuna.Study) -> go.Figure:
    return _literal(plot_optimization_history(study))


def intermediate_values(study: optuna.Study) -> go.Figure:
    """Optuna's learning curves, with an x where each pruned trial was stopped."""
    figure = _literal(plot_intermediate_values(study))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    marks = [(max(t.intermediate_values), t.intermediate_values[max(t.intermediate_values)], t)
             for t in pruned if t.intermediate_values]
    if marks:
        figure.add_trace(go.Scatter(
            x=[m[0] for m in marks], y=[m[1] for m in marks], mode="markers", name="pruned here",
            marker={"symbol": "x", "size": 11, "color": STATE_COLORS["PRUNED"]},
            text=[f"trial {m[2].number}: pruned by {_label(m[2].user_attrs.get(PRUNED_BY_ATTR, '?'))}" for m in marks],
            hoverinfo="text",
        ))
    figure.update_layout(title="Intermediate values (x: pruned)")
    return figure


def pareto_front_of(study: optuna.Study, metrics: list[str]) -> go.Figure:
    """Optuna's Pareto-front plot of a multi-objective study (infeasible trials apart)."""
    try:
        return _literal(plot_pareto_front(study, target_names=[_label(m) for m in metrics]))
    except ValueError as exc:  # a study of more objectives than the plot draws
        return _note("Pareto front", f"not drawn: {exc}")


def _first_objective(study: optuna.Study, metric: str) -> dict:
    """Optuna's figures take one target: the first objective of a multi-objective study."""
    if len(study.directions) == 1:
        return {}
    return {"target": lambda trial: trial.values[0], "target_name": _label(metric)}


# Below this many complete trials, importances (a forest fitted to the trials) are mostly noise.
MIN_IMPORTANCE_TRIALS = 10


def param_importances(study: optuna.Study, metric: str = "objective") -> go.Figure:
    """Optuna's importances (of the first objective in a multi-objective study), from the complete trials,
    their number in the title; a note saying how many more are needed while there are fewer than
    ``MIN_IMPORTANCE_TRIALS``."""
    title = "Parameter importances"
    used = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if used < MIN_IMPORTANCE_TRIALS:
        more = MIN_IMPORTANCE_TRIALS - used
        return _note(title, f"needs {MIN_IMPORTANCE_TRIALS} complete trials, the study has {used}: "
                            f"{more} more to go")
    try:
        with warnings.catch_warnings():  # Optuna reminds that a custom target is minimised: it is one of ours
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes the importances")
            figure = _literal(plot_param_importances(study, **_first_objective(study, metric)))
    except (ValueError, RuntimeError) as exc:
        return _note(title, f"not available yet: {exc}")
    return figure.update_layout(title=f"{title}, from {used} complete trials")


def parallel_coordinates(study: optuna.Study, metric: str = "objective") -> go.Figure:
    return _literal(plot_parallel_coordinate(study, **_first_objective(study, metric)))


def metric_curves(study: optuna.Study, first: str = "objective") -> go.Figure:
    """Every metric's per-epoch curve of every trial, one metric at a time, chosen in a menu (``first`` shown
    first). The curves come from each trial's ``metric_series`` attribute; a trial recorded before it existed
    shows its intermediate values (the objective) only, and the figure says how many such trials there are."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    series = {t.number: t.user_attrs.get(SERIES_ATTR) for t in trials if t.user_attrs.get(SERIES_ATTR)}
    older = [t for t in trials if t.number not in series and t.intermediate_values]
    names = sorted({name for one in series.values() for name in one if name != "epoch"})
    names.sort(key=lambda name: name != first)
    fallback = f"{first} (intermediate values)"
    if older:
        names.append(fallback) if first not in names else None
    if not names:
        return _note("Metric curves", "no trial has reported an epoch yet")
    figure = go.Figure()
    owners = []  # the metric each trace draws
    for name in names:
        for trial in trials:
            if trial.number in series and name in series[trial.number]:
                x, y = series[trial.number]["epoch"], series[trial.number][name]
            elif trial in older and name in (first, fallback):
                x, y = list(trial.intermediate_values), list(trial.intermediate_values.values())
            else:
                continue
            figure.add_trace(go.Scatter(
                x=x, y=y, mode="lines+markers", name=f"trial {trial.number}", visible=name == names[0],
                line={"color": STATE_COLORS.get(trial.state.name, "#7f7f7f"), "width": 1.5}, marker={"size": 4},
                hovertemplate=f"trial {trial.number} ({trial.state.name.lower()})<br>epoch %{{x}}<br>{_label(name)} "
                              "%{y:.5g}<extra></extra>",
            ))
            owners.append(name)
    buttons = [{"label": _label(name), "method": "update",
                "args": [{"visible": [owner == name for owner in owners]}, {"yaxis": {"title": {"text": _label(name)}}}]}
               for name in names]
    note = (f"{len(older)} trial(s) recorded before per-metric series: only their objective is drawn"
            if older else "")
    figure.update_layout(
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left", "y": 1.18,
                      "yanchor": "top", "showactive": True}],
        xaxis={"title": {"text": "epoch"}}, yaxis={"title": {"text": _label(names[0])}}, showlegend=False,
        title={"text": "Metric curves (choose the metric; colour: trial state)", "x": 0.35},
        annotations=[{"text": note, "showarrow": False, "xref": "paper", "yref": "paper", "x": 1, "y": 1.12,
                      "xanchor": "right"}] if note else [],
    )
    return figure


def perplexity_vs_mse(frame: pd.DataFrame) -> go.Figure:
    """Final validation perplexity against reconstruction MSE, one point per trial, colored by state."""
    figure = go.Figure()
    if {"val_perplexity", "val_recon_mse"} <= set(frame.columns):
        for state, rows in frame.dropna(subset=["val_perplexity", "val_recon_mse"]).groupby("state"):
            figure.add_trace(go.Scatter(
                x=rows["val_perplexity"], y=rows["val_recon_mse"], mode="markers", name=str(state),
                marker={"color": STATE_COLORS.get(str(state), "#7f7f7f"), "size": 9},
                text=[f"trial {n}" for n in rows["number"]], hoverinfo="text+x+y",
            ))
    figure.update_layout(title="Codebook perplexity vs reconstruction MSE", xaxis_title="val perplexity",
                         yaxis_title="val reconstruction MSE", yaxis_type="log")
    return figure


def active_codes_vs_k(frame: pd.DataFrame) -> go.Figure:
    """Codes used on the validation split against the codebook size K, one point per trial (by quantizer kind),
    under the line where every code is used: how many codes these images keep alive, whatever K."""
    figure = go.Figure()
    if {"val_active_codes", "codebook_size"} <= set(frame.columns):
        points = frame.dropna(subset=["val_active_codes", "codebook_size"])
        kinds = points["quantizer_kind"] if "quantizer_kind" in points else pd.Series("vq", index=points.index)
        for kind, rows in points.groupby(kinds.fillna("vq")):
            figure.add_trace(go.Scatter(
                x=rows["codebook_size"], y=rows["val_active_codes"], mode="markers", name=str(kind),
                marker={"size": 9, "symbol": "diamond" if kind == "fsq" else "circle"},
                text=[f"trial {n} ({s.lower()}): {a:.0%} of K active" for n, s, a in
                      zip(rows["number"], rows["state"], rows["val_active_codes"] / rows["codebook_size"])],
                hoverinfo="text+x+y",
            ))
        if len(points):
            ends = [float(points["codebook_size"].min()), float(points["codebook_size"].max())]
            figure.add_trace(go.Scatter(x=ends, y=ends, mode="lines", name="all K codes active",
                                        line={"color": "black", "dash": "dot"}))
    figure.update_layout(title="Active codes vs codebook size", xaxis_title="K (codebook size)", xaxis_type="log",
                         yaxis_title="codes used on the validation split", yaxis_type="log")
    return figure


def rate_distortion(frame: pd.DataFrame) -> go.Figure:
    """Bits per image (latent cells x log2 K) against val MSE, with the Pareto front of the trials."""
    figure = go.Figure()
    if {"bits_per_image", "val_recon_mse"} <= set(frame.columns):
        points = frame.dropna(subset=["bits_per_image", "val_recon_mse"])
        for state, rows in points.groupby("state"):
            figure.add_trace(go.Scatter(
                x=rows["bits_per_image"], y=rows["val_recon_mse"], mode="markers", name=str(state),
                marker={"color": STATE_COLORS.get(str(state), "#7f7f7f"), "size": 9},
                text=[f"trial {n}" for n in rows["number"]], hoverinfo="text+x+y",
            ))
        front = pareto_front(points["bits_per_image"].to_numpy(), points["val_recon_mse"].to_numpy())
        if len(front):
            ordered = points.iloc[front].sort_values("bits_per_image")
            figure.add_trace(go.Scatter(x=ordered["bits_per_image"], y=ordered["val_recon_mse"],
                                        mode="lines", name="Pareto front", line={"color": "black", "dash": "dot"}))
    figure.update_layout(title="Rate vs distortion", xaxis_title="bits per image (latent cells x log2 K)",
                         xaxis_type="log", yaxis_title="val reconstruction MSE", yaxis_type="log")
    return figure


def bits_per_dim_parts(frame: pd.DataFrame) -> go.Figure:
    """Each trial's val_bits_per_dim as a stacked bar: the code bits under its prior (rate) and the decoder's
    bits (distortion), both per subpixel; the trial with the lowest total first."""
    figure = go.Figure()
    if {"val_bits_per_dim", "val_distortion_bits_per_dim"} <= set(frame.columns):
        rows = frame.dropna(subset=["val_bits_per_dim", "val_distortion_bits_per_dim"]).sort_values("val_bits_per_dim")
        labels = [f"#{n}" for n in rows["number"]]
        figure.add_bar(x=labels, y=rows["val_bits_per_dim"] - rows["val_distortion_bits_per_dim"], name="rate: code bits")
        figure.add_bar(x=labels, y=rows["val_distortion_bits_per_dim"], name="distortion: decoder bits")
    figure.update_layout(title="val bits/dim = rate + distortion", barmode="stack", xaxis_title="trial",
                         yaxis_title="bits per subpixel")
    return figure


def pareto_front(rate: np.ndarray, distortion: np.ndarray) -> list[int]:
    """Indices of the points no other point beats on both rate and distortion (lower is better)."""
    front = []
    for i in range(len(rate)):
        dominated = np.any((rate <= rate[i]) & (distortion <= distortion[i]) &
                           ((rate < rate[i]) | (distortion < distortion[i])))
        if not dominated:
            front.append(i)
    return front


def _note(title: str, text: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False}, height=200)
    return figure
