"""The targets at a glance: one table of the headline figures of BENCHMARKS.md, read from its sections' records.

    python benchmarks/summary.py --write BENCHMARKS.md   # make bench runs it last
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from sections import write_section


def records(text: str, name: str) -> dict[str, dict]:
    found = re.search(rf"<!-- {re.escape(name)}:records (.*?) -->", text, re.S)
    return {r["device"]: r for r in json.loads(found.group(1))} if found else {}


def rows(text: str) -> list[tuple[str, str, str, str, str]]:
    """(figure, measured, target, verdict, date) for every section that has a CPU record."""
    out = []
    if r := records(text, "trainer_vs_reference").get("cpu"):
        ratio, pairs = r["train_ratio"], r["pair_train_ratios"]
        out.append(("Trainer vs a plain PyTorch loop, training images/s, with equal losses",
                    f"{ratio:.2f}x (median; runs {min(pairs):.2f}-{max(pairs):.2f}x)", ">= 1.3x",
                    _verdict(ratio >= 1.3 and r["losses_equal"]), r["date_utc"]))
    if r := records(text, "orchestration_overhead").get("cpu"):
        for kind, s in r["summary"].items():
            out.append((f"`vqtune run` overhead per trial, {kind}", f"{s['per_trial_s']:.2f} s", "<= 0.5 s",
                        _verdict(s["per_trial_s"] <= 0.5), r["date_utc"]))
            out.append((f"`vqtune run` overhead per epoch report, {kind}", f"{s['per_epoch_ms']:.1f} ms", "<= 20 ms",
                        _verdict(s["per_epoch_ms"] <= 20), r["date_utc"]))
    if r := records(text, "pruning_savings").get("cpu"):
        f = r["figures"]
        out.append(("Pruning: fewer epochs, best value against no pruning",
                    f"{f['epoch_saving']:.0%} fewer, best {f['best_gap']:+.1%}", ">= 50% fewer, best within 2%",
                    _verdict(f["pruning_met"]), r["date_utc"]))
    if r := records(text, "search_quality").get("cpu"):
        f = r["figures"]
        out.append(("Search's best vs the default model for the same time: nMSE, perplexity",
                    f"{f['nmse_gain']:.0%} lower, {f['best_usage']:.0%} of K", ">= 20% lower, >= 50% of K",
                    _verdict(f["quality_met"]), r["date_utc"]))
    if r := records(text, "soak").get("cpu"):
        lost = sum(s["values_lost"] for s in r["results"])
        locked = sum(s["locked_errors"] for s in r["results"])
        out.append((f"Soak: {r['results'][0]['processes']} concurrent writers, "
                    f"{' and '.join(s['storage'] for s in r['results'])}",
                    f"{lost} values lost, {locked} locked", "0 lost, 0 locked", _verdict(r["passed"]), r["date_utc"]))
    return out


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def render(records: dict[str, dict]) -> str:
    lines = ["## Targets at a glance", "",
             "The headline figure of each benchmark below, next to its target (CPU, 2 cores; each section has the "
             "setting, the machine, the command and, for a missed target, why).", "",
             "| figure | measured | target | verdict | measured on |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in records["cpu"]["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="PATH", required=True, help="the BENCHMARKS.md to summarize")
    args = parser.parse_args()
    record = {"device": "cpu", "rows": rows(args.write.read_text())}
    write_section(args.write, "summary", record, render)
    print(render({"cpu": record}), file=sys.stderr)


if __name__ == "__main__":
    main()
