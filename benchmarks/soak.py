"""Concurrent writers: several processes report epochs to one study for a while; nothing may be lost.

Each writer opens the storage as a search worker does and, until the time is up, runs trials of reported
epochs and pruner questions, writing every call down in its own ledger; afterwards the study is read back and
compared with the ledgers. SQLite first, then PostgreSQL (a throwaway local server).

    python benchmarks/soak.py                        # 8 writers, 60 s per database; exit 1 if anything was lost
    python benchmarks/soak.py --write BENCHMARKS.md  # also record the figures there (`make soak`)
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

import optuna
from optuna.trial import TrialState

import records
from vqtune.config import Storage
from vqtune.study import mask, open_storage

SECTION = "soak"
EPOCHS_PER_TRIAL = 10
STUDY = "soak"


def writer(url: str, seconds: float, index: int, ledger_path: str) -> None:
    """One writer process: trials of EPOCHS_PER_TRIAL reports each until ``seconds`` have passed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ledger = {"writer": index, "told": [], "reported": [], "errors": [], "report_ms": []}
    try:
        storage = open_storage(Storage(url=url))
        study = optuna.load_study(study_name=STUDY, storage=storage, pruner=optuna.pruners.MedianPruner())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                trial = study.ask()
                trial.set_user_attr("writer", index)
                for epoch in range(1, EPOCHS_PER_TRIAL + 1):
                    value = 1.0 / epoch + index * 1e-3 + trial.number * 1e-6
                    t0 = time.perf_counter()
                    trial.report(value, epoch)
                    trial.should_prune()
                    ledger["report_ms"].append((time.perf_counter() - t0) * 1e3)
                    ledger["reported"].append([trial.number, epoch, value])
                trial.set_user_attr("epochs", EPOCHS_PER_TRIAL)
                study.tell(trial, value)
                ledger["told"].append(trial.number)
            except Exception as exc:  # recorded, and the writer goes on: the soak counts every failure
                ledger["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    except Exception:
        ledger["errors"].append(traceback.format_exc(limit=3))
    Path(ledger_path).write_text(json.dumps(ledger))


def soak(url: str, processes: int, seconds: float, scratch: Path, name: str) -> dict:
    storage = open_storage(Storage(url=url))
    optuna.create_study(study_name=STUDY, storage=storage)
    context = multiprocessing.get_context("spawn")  # fresh interpreters, like separate workers
    ledgers = [scratch / f"{name}-{i}.json" for i in range(processes)]
    workers = [context.Process(target=writer, args=(url, seconds, i, str(ledgers[i]))) for i in range(processes)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 300)
    wall = time.perf_counter() - t0
    if any(w.exitcode != 0 for w in workers):
        sys.exit(f"{name}: a writer process did not finish cleanly: exit codes {[w.exitcode for w in workers]}")
    books = [json.loads(p.read_text()) for p in ledgers]

    trials = {t.number: t for t in optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)}
    reported = [tuple(r) for book in books for r in book["reported"]]
    lost = [(n, e, v) for n, e, v in reported if n not in trials or trials[n].intermediate_values.get(e) != v]
    told = [n for book in books for n in book["told"]]
    not_complete = [n for n in told if trials[n].state != TrialState.COMPLETE]
    errors = [e for book in books for e in book["errors"]]
    locked = [e for e in errors if "database is locked" in e]
    latencies = sorted(ms for book in books for ms in book["report_ms"])
    return {
        "storage": name, "url": mask(url), "processes": processes, "seconds": seconds, "wall_s": wall,
        "trials_told": len(told), "values_reported": len(reported), "values_lost": len(lost),
        "told_not_complete": len(not_complete), "errors": len(errors), "locked_errors": len(locked),
        "error_examples": sorted(set(errors))[:5],
        "trials_failed": sum(t.state == TrialState.FAIL for t in trials.values()),
        "reports_per_s": len(reported) / seconds,
        "report_ms": {"median": statistics.median(latencies) if latencies else None,
                      "p99": latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
                      "max": latencies[-1] if latencies else None},
    }


def main() -> None:
    parser = records.parser(__doc__)
    parser.add_argument("--processes", type=int, default=8, help="writer processes (default 8)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of writing per database (default 60)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = records.parse(parser, {SECTION: render})

    meter = records.LoadMeter()
    results = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="vqtune-soak-") as scratch:
        root = Path(scratch)
        for kind, database in records.databases(stack, root, postgres=not args.no_postgres).items():
            results.append(soak(database("soak"), args.processes, args.seconds, root, kind))

    failed = [r["storage"] for r in results if r["values_lost"] or r["locked_errors"] or r["errors"]
              or r["told_not_complete"] or r["trials_failed"]]
    record = records.new_record(SECTION, "cpu", meter, results=results, epochs_per_trial=EPOCHS_PER_TRIAL,
                                passed=not failed)
    records.finish(args, record, {SECTION: render})
    if failed:
        sys.exit(f"soak FAILED on {', '.join(failed)}: see the figures above")
    records.log("soak passed: nothing lost, no lock errors")


def render(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    rows = [[s["storage"], f"{s['trials_told']:,}", f"{s['values_reported']:,} ({s['reports_per_s']:,.0f})",
             s["values_lost"], s["trials_failed"] + s["told_not_complete"], s["errors"], s["locked_errors"],
             f"{s['report_ms']['median']:.1f} / {s['report_ms']['p99']:.1f} / {s['report_ms']['max']:.0f}"]
            for s in r["results"]]
    first = r["results"][0]
    return [*records.table(["storage", "trials told", "values reported (per s)", "values lost", "trials failed",
                            "errors", "'database is locked'", "report + pruner, ms: median / p99 / max"], rows),
            "", "Result: " + ("nothing was lost and no call failed." if r["passed"]
                              else "**something was lost or failed: see the table.**"),
            "", *records.setting_lines(r, f"Setting: {first['processes']} writer processes, {first['seconds']:.0f} s "
                                          f"per database, {r['epochs_per_trial']} epochs per trial.")]


def headline(r: dict) -> list[tuple[str, str, str, bool]]:
    """The row of the targets at a glance: (figure, measured, target, met)."""
    lost = sum(s["values_lost"] for s in r["results"])
    locked = sum(s["locked_errors"] for s in r["results"])
    return [(f"Soak: {r['results'][0]['processes']} concurrent writers, "
             f"{' and '.join(s['storage'] for s in r['results'])}",
             f"{lost} values lost, {locked} locked", "0 lost, 0 locked", r["passed"])]


if __name__ == "__main__":
    main()
