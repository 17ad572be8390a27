"""Concurrent writers: several processes report epochs to one study for a while; nothing may be lost.

Each writer process opens the storage the way a search worker does (``open_storage``: SQLite in WAL mode with
its busy timeout, or PostgreSQL), then, until the time is up, asks the study for a trial and for each epoch
reports a value and asks the study's pruner (as every epoch of a real trial does), then sets the trial's
final attributes and tells it COMPLETE; every call it made is written down in its own ledger. Afterwards the
study is read back and compared with the ledgers: every intermediate value a writer reported must be there
with its value, every trial it told must be COMPLETE, and no call may have failed ("database is locked" or any
other error). SQLite first, then PostgreSQL (a throwaway local server).

    python benchmarks/soak.py                        # 8 writers, 60 s per database; exit 1 if anything was lost
    python benchmarks/soak.py --write BENCHMARKS.md  # also record the figures there (`make soak`)
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

import optuna
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package: its throwaway PostgreSQL

from sections import LoadMeter, load_line, machine_line, write_section  # noqa: E402
from train_throughput import log  # noqa: E402
from vqtune.config._search import Storage  # noqa: E402
from vqtune.tune._storage import mask, open_storage  # noqa: E402

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
    records = [json.loads(p.read_text()) for p in ledgers]

    trials = {t.number: t for t in optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)}
    reported = [tuple(r) for rec in records for r in rec["reported"]]
    lost = [(n, e, v) for n, e, v in reported if n not in trials or trials[n].intermediate_values.get(e) != v]
    told = [n for rec in records for n in rec["told"]]
    not_complete = [n for n in told if trials[n].state != TrialState.COMPLETE]
    errors = [e for rec in records for e in rec["errors"]]
    locked = [e for e in errors if "database is locked" in e]
    latencies = sorted(ms for rec in records for ms in rec["report_ms"])
    result = {
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
    ms = result["report_ms"]
    log(f"{name}: {processes} writers, {seconds:.0f} s: {len(told)} trials told, {len(reported)} values reported "
        f"({result['reports_per_s']:.0f}/s), {len(lost)} lost, {len(errors)} errors ({len(locked)} 'database is "
        f"locked'); report + pruner median {ms['median']:.1f} ms, p99 {ms['p99']:.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8, help="writer processes (default 8)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of writing per database (default 60)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--write", type=Path, metavar="PATH", help="record the figures in PATH")
    args = parser.parse_args()

    meter = LoadMeter()
    results = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="vqtune-soak-") as scratch:
        root = Path(scratch)
        results.append(soak(f"sqlite:///{root / 'soak.db'}", args.processes, args.seconds, root, "sqlite"))
        if not args.no_postgres:
            from tests.postgres import throwaway_postgres

            url = stack.enter_context(throwaway_postgres(root / "pg"))
            results.append(soak(url, args.processes, args.seconds, root, "postgresql"))

    import torch
    from train_throughput import describe_machine

    record = {
        "benchmark": "soak", "device": "cpu", "results": results, "epochs_per_trial": EPOCHS_PER_TRIAL,
        **meter.record(), "machine": describe_machine(torch.device("cpu")),
        "command": shlex.join(["python", *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    failed = [r["storage"] for r in results if r["values_lost"] or r["locked_errors"] or r["errors"]
              or r["told_not_complete"] or r["trials_failed"]]
    record["passed"] = not failed
    if args.write:
        write_section(args.write, "soak", record, render_section)
        log(f"updated the soak section of {args.write}")
    print(json.dumps(record))
    if failed:
        sys.exit(f"soak FAILED on {', '.join(failed)}: see the figures above")
    log("soak passed: nothing lost, no lock errors")


def render_section(records: dict[str, dict]) -> str:
    r = records["cpu"]
    lines = [
        "## Concurrent writers (soak)",
        "",
        f"{r['results'][0]['processes']} processes write to one study at once for {r['results'][0]['seconds']:.0f} s "
        "per database, each opening the storage as a search worker does (`open_storage`: SQLite in WAL mode with "
        "a busy timeout; PostgreSQL on a throwaway local server): trial after trial, "
        f"{r['epochs_per_trial']} epochs each, every epoch a reported value and a question to the median pruner, "
        "then the trial told COMPLETE. As fast as they can, so far more often than real trials (one epoch every "
        "few seconds). Afterwards the study is read back and checked against each writer's ledger of its calls.",
        "",
        "| storage | trials told | values reported (per s) | values lost | trials failed | errors | "
        "'database is locked' | report + pruner, ms: median / p99 / max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in r["results"]:
        ms = s["report_ms"]
        lines.append(f"| {s['storage']} | {s['trials_told']:,} | {s['values_reported']:,} ({s['reports_per_s']:,.0f}) "
                     f"| {s['values_lost']} | {s['trials_failed'] + s['told_not_complete']} | {s['errors']} "
                     f"| {s['locked_errors']} | {ms['median']:.1f} / {ms['p99']:.1f} / {ms['max']:.0f} |")
    verdict = ("Nothing was lost and no call failed." if r["passed"]
               else "**Something was lost or failed: see the table.**")
    lines += ["", verdict, "", machine_line(r), load_line(r), f"Command: `{r['command']}` (`make soak`)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
