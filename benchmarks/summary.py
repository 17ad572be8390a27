"""The targets at a glance: one table of the headline figures of BENCHMARKS.md, read from its sections' records.

    python benchmarks/summary.py --write BENCHMARKS.md   # make bench and make soak run it last
"""

from __future__ import annotations

import fashion_mnist_search
import orchestration_overhead
import outage
import quantizers
import records
import soak
import trainer_vs_reference

SECTION = "summary"
# Each benchmark with a target: the section its records are kept in, and its headline rows.
HEADLINES = [("trainer_vs_reference", trainer_vs_reference.headline),
             ("orchestration_overhead", orchestration_overhead.headline),
             ("pruning_savings", fashion_mnist_search.headline),
             ("quantizers", quantizers.headline),
             (quantizers.section_of(0), quantizers.headline),  # the same with dead-code restarts off
             ("soak", soak.headline),
             ("outage", outage.headline)]


def render(recs: dict[str, dict]) -> list[str]:
    return records.table(["figure", "measured", "target", "verdict", "measured on"], recs["cpu"]["rows"])


def main() -> None:
    parser = records.parser(__doc__)
    args = records.parse(parser, {SECTION: render})
    if not args.write:
        parser.error("--write PATH is required: the BENCHMARKS.md to summarize")
    text = args.write.read_text()
    rows = [[figure, measured, target, records.verdict(met), r["date_utc"]]
            for name, headline in HEADLINES if (r := records.read_records(text, name).get("cpu"))
            for figure, measured, target, met in headline(r)]
    records.write(args.write, {"device": "cpu", "rows": rows}, {SECTION: render})


if __name__ == "__main__":
    main()
