"""What the commands print on stdout: tables (rich), one JSON document, or CSV; the summary of ``vqtune run``
and the trials table of ``vqtune trials``. The command line (:mod:`vqtune.cli`) parses and calls; this module
only renders what it is handed."""

from __future__ import annotations

import json
import math
import shlex
import sys

from rich.console import Console
from rich.text import Text

FORMATS = ("table", "json", "csv")
PRIOR_LINES = 10  # trials whose prior warning `vqtune trials` prints under its table, at most


def print_summary(summary: dict, result, form: str) -> None:
    """The summary of ``vqtune run`` on stdout: a few lines (table), one JSON document, or the best / Pareto
    trials as CSV."""
    if form == "json":  # floats in full; NaN and inf as null
        print(json.dumps(finite(summary), allow_nan=False))
        return
    if form == "csv":
        import pandas as pd

        metrics = summary["metrics"]
        rows = [{"number": t.number, **dict(zip(metrics, t.values)), **t.params} for t in result.pareto]
        pd.DataFrame(rows, columns=["number", *metrics] if not rows else None).to_csv(sys.stdout, index=False)
        return
    counts = ", ".join(f"{n} {state}" for state, n in summary["counts"].items() if n)
    lines = [f"study {summary['study']} in {summary['storage']}: {counts or 'no trials'}"]
    if summary["pareto"]:
        lines.append(f"Pareto front ({' / '.join(summary['metrics'])}), {len(summary['pareto'])} trials:")
        for trial in summary["pareto"]:
            values = " / ".join(f"{v:.6g}" for v in trial["values"])
            params = ", ".join(f"{k}={v}" for k, v in trial["params"].items())
            lines.append(f"  trial {trial['number']}: {values}  {params}")
    elif summary["best"]:
        best = summary["best"]
        lines.append(f"best: trial {best['number']}, {summary['metrics'][0]} {best['value']:.6g}")
        lines += [f"  {key}: {value}" for key, value in best["params"].items()]
    if result.pareto:
        lines.append("next:")
        lines += [f"  {command}" for command in summary["next"]]
    print("\n".join(lines), flush=True)


def print_trials_table(frame, study, values: list[str], study_name: str) -> None:
    """``vqtune trials`` as a table: the columns worth a glance (each objective under ``values``), and under it
    the line of each trial whose prior is worse than the unigram prior (the first ``PRIOR_LINES``)."""
    from vqtune.study import FAIL_REASON_ATTR, PRIOR_WARNING_ATTR, PRUNED_BY_ATTR  # loaded already: study is open

    params = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    columns = ["number", "state", *values, "pareto", "feasible", *params, PRUNED_BY_ATTR, "epochs", "val_perplexity",
               "val_active_codes", "codebook_size", "prior", FAIL_REASON_ATTR]
    # A prior worse than the unigram one: "worse" in a narrow column, and its line (too long for a cell) below.
    warned = frame[["number", PRIOR_WARNING_ATTR]].dropna() if PRIOR_WARNING_ATTR in frame else frame.iloc[0:0]
    if len(warned):
        frame = frame.assign(prior=frame[PRIOR_WARNING_ATTR].notna().map({True: "worse", False: None}))
    print_frame(frame.reindex(columns=[c for c in columns if c in frame.columns]), "no trials")
    for number, warning in list(warned.itertuples(index=False))[:PRIOR_LINES]:
        print(f"trial {number}: {warning}")
    if len(warned) > PRIOR_LINES:
        print(f"... and {len(warned) - PRIOR_LINES} more trials whose prior is worse than the unigram prior "
              f"(vqtune trials --study {shlex.quote(study_name)} --format csv: column {PRIOR_WARNING_ATTR})")


def print_frame(frame, empty: str, form: str = "table") -> None:
    """A pandas frame on stdout: a rich table (``empty`` when it has no rows), JSON records, or CSV."""
    from rich.table import Table

    if form == "json":  # NaN and inf as null, timestamps as ISO strings
        print(frame.to_json(orient="records", date_format="iso", double_precision=15))
        return
    if form == "csv":
        frame.to_csv(sys.stdout, index=False)
        return
    if frame.empty:
        print(empty)
        return
    table = Table(box=None, header_style="bold")
    # Cells and headers are Text: a name or value read from a database is printed as it is, never as markup.
    for column in frame.columns:
        table.add_column(Text(str(column)), justify="right" if frame[column].dtype.kind in "if" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(Text("" if _missing(v) else f"{v:.5g}" if isinstance(v, float) else str(v)) for v in row))
    Console(width=max(240, Console().width)).print(table)  # a wide table beats truncated columns


def finite(value):
    """``value`` with every NaN or infinite float (a diverged trial's) replaced by None, for JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)
