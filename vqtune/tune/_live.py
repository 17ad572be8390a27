"""A live view of a search: trials by state, the best so far, the trials running and their epoch."""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState
from ray import tune
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vqtune.config import SearchSpace
from vqtune.study import best_trial, best_trials, count_states


class LiveView(tune.Callback):
    """A Ray Tune callback that redraws a rich table after every reported epoch and finished trial.

    A worker waits in its report until the driver has handled the result, so an epoch's result only updates
    the running trials' rows; the study itself (counts, best trial: a read of every trial) is read again when a
    trial ends, and at most once a second otherwise.
    """

    REREAD_S = 1.0

    def __init__(self, study: optuna.Study, space: SearchSpace, n_trials: int, live: Live):
        self.study = study
        self.space = space
        self.n_trials = n_trials
        self.live = live
        self.running: dict[str, dict] = {}
        self._header: list = []
        self._read_at = -float("inf")

    def __getstate__(self) -> dict:
        return {}  # Ray pickles callbacks with the experiment state; a live view is not state

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.running[trial.trial_id] = result
        self.refresh(reread=time.monotonic() - self._read_at >= self.REREAD_S)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        self.refresh(reread=True)

    on_trial_error = on_trial_complete

    def refresh(self, reread: bool = True) -> None:
        if reread or not self._header:
            self._header = header(self.study, self.space, self.n_trials)
            self._read_at = time.monotonic()
        self.live.update(Group(*self._header, *running_table(self.space, self.running.values())))


def render(study: optuna.Study, space: SearchSpace, n_trials: int, running=()) -> Group:
    return Group(*header(study, space, n_trials), *running_table(space, running))


def header(study: optuna.Study, space: SearchSpace, n_trials: int) -> list[Text]:
    """The study's line (trials by state) and the best trial so far."""
    counts = count_states(study)
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    metric = space.goals[0].metric
    states = "  ".join(
        f"{state.name.lower()} {counts[state]}"
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)
        if counts[state] or state in (TrialState.COMPLETE, TrialState.PRUNED)
    )
    lines = [Text.from_markup(f"[bold]study {study.study_name}[/]  {finished}/{n_trials} finished  ({states})")]
    if space.is_multi_objective:
        front = best_trials(study)
        if front:
            metrics = " / ".join(goal.metric for goal in space.goals)
            points = ", ".join(f"#{t.number} " + " / ".join(f"{v:.4g}" for v in t.values) for t in front[:6])
            more = f" and {len(front) - 6} more" if len(front) > 6 else ""
            lines.append(Text(f"Pareto front ({metrics}): {points}{more}"))
        return lines
    best = best_trial(study)
    if best is not None:
        params = ", ".join(f"{k}={_short(v)}" for k, v in best.params.items())
        lines.append(Text.from_markup(f"best #{best.number}: {metric} [bold]{best.value:.5g}[/]  {params}"))
    return lines


def running_table(space: SearchSpace, running=()) -> list[Table]:
    """One row per running trial, from its last reported epoch (none when nothing runs)."""
    rows = sorted(running, key=lambda r: r.get("optuna_trial", 0))
    if not rows:
        return []
    metrics = [goal.metric for goal in space.goals]
    table = Table(box=None, pad_edge=False, header_style="dim")
    for column in ("trial", "epoch", *metrics, "perplexity", "active codes", "img/s"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"#{r.get('optuna_trial', '?')}", f"{r.get('epoch', 0)}/{space.base.total_epochs}",
            *(f"{r[m]:.5g}" if m in r else "-" for m in metrics),
            f"{r['val_perplexity']:.1f}" if "val_perplexity" in r else "-",
            f"{r['val_active_codes']:.0f}" if "val_active_codes" in r else "-",
            f"{r['train_images_per_s']:.0f}" if "train_images_per_s" in r else "-",
        )
    return [table]


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
