"""Storage outage: the study's PostgreSQL server stops in the middle of a search, starts again, and the same command
is run again; no finished trial may be lost or run twice.

Each repeat is one run of tests/tune/outage.py: `vqtune run` on a throwaway server, stopped (an immediate
shutdown, as a crash) once a trial has finished and the next has reported an epoch; the run must end with exit 2
and at most three lines on stderr; the server starts again and the same command must finish the search.

    python benchmarks/outage.py                        # 3 repeats; exit 1 if a target is missed
    python benchmarks/outage.py --write BENCHMARKS.md  # also record the figures there (`make soak`)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import records

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package has the outage and the server
from tests.tune.outage import outage  # noqa: E402

SECTION = "outage"
MAX_LINES = 3


def met(run: dict) -> bool:
    """The outage ended as it should and the rerun lost and repeated nothing."""
    return (run["exit_code"] == 2 and 1 <= len(run["stderr_lines"]) <= MAX_LINES
            and "the same command continues" in run["stderr_lines"][-1] and run["finished_before"] >= 1
            and run["rerun_exit_code"] == 0 and run["finished_after"] == run["n_trials"]
            and run["lost"] == 0 and run["duplicated"] == 0)


def main() -> None:
    parser = records.parser(__doc__, repeats=3)
    parser.add_argument("--trials", type=int, default=3, help="n_trials of the search (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (default 2)")
    args = records.parse(parser, {SECTION: render})

    meter = records.LoadMeter()
    runs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="vqtune-outage-") as scratch:
            run = outage(Path(scratch), n_trials=args.trials, epochs=args.epochs)
        runs.append(run.record())
        records.log(f"repeat {repeat + 1}: exit {run.exit_code} in {len(run.stderr_lines)} lines, "
                    f"{run.finished_before} finished before, rerun exit {run.rerun_exit_code}, "
                    f"{run.lost} lost, {run.duplicated} duplicated")
        if not met(run.record()):
            records.log("  stderr: " + "\n  stderr: ".join(run.stderr_lines[-10:]))
            records.log("  rerun: " + run.rerun_output[-1500:])
    passed = all(met(r) for r in runs)
    record = records.new_record(SECTION, "cpu", meter, runs=runs, epochs=args.epochs, passed=passed)
    records.finish(args, record, {SECTION: render})
    if not passed:
        sys.exit("outage FAILED: see the figures above")
    records.log("outage passed: every run ended in a few lines, and its rerun lost and repeated nothing")


def render(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    rows = [[i + 1, run["finished_before"], f"{run['exit_code']} in {len(run['stderr_lines'])} line(s)",
             f"{run['seconds_to_end']:.1f}", run["rerun_exit_code"], f"{run['finished_after']}/{run['n_trials']}",
             run["lost"], run["duplicated"], f"{run['seconds_to_recover']:.1f}"]
            for i, run in enumerate(r["runs"])]
    last = r["runs"][-1]["stderr_lines"][-1] if r["runs"][-1]["stderr_lines"] else "(none)"
    return [*records.table(["run", "finished before the outage", "outage: exit code in stderr lines",
                            "outage: s from stop to exit", "rerun: exit code", "finished after the rerun",
                            "finished trials lost", "duplicated parameter sets", "rerun: s from restart to end"],
                           rows),
            "", "Result: " + ("every outage ended with exit 2 in at most three lines, and every rerun finished the "
                              "search with no finished trial lost or run twice." if r["passed"]
                              else "**a target was missed: see the table.**"),
            "", f"The outage's last line (run {len(r['runs'])}): `{last}`",
            "", *records.setting_lines(r, f"Setting: {len(r['runs'])} runs; each a search of {r['runs'][0]['n_trials']} "
                                          f"trials of {r['epochs']} epochs, one at a time, on a throwaway local "
                                          "PostgreSQL server.")]


def headline(r: dict) -> list[tuple[str, str, str, bool]]:
    """The row of the targets at a glance: (figure, measured, target, met)."""
    lost = sum(run["lost"] for run in r["runs"])
    duplicated = sum(run["duplicated"] for run in r["runs"])
    return [(f"Storage outage: server stopped mid-search and restarted, search rerun ({len(r['runs'])} runs)",
             f"{lost} finished trials lost, {duplicated} duplicated", "0 lost, 0 duplicated", r["passed"])]


if __name__ == "__main__":
    main()
