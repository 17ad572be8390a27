"""BENCHMARKS.md: each benchmark script owns one section between its own markers.

The measured records are kept inside the section as JSON, one per device kind, so a run on a GPU machine adds
its row without dropping the CPU one, and the text is always rendered from every record.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Callable

TITLE = "# vqtune benchmarks"
INTRO = (
    "Measured figures for vqtune, each produced by a script in `benchmarks/` that writes its own section "
    "of this file (between `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers) with the machine, the exact "
    "command and the date, so any figure here can be re-measured and compared. Re-run a script with "
    "`--write BENCHMARKS.md` to update its section; other sections are left as they are."
)


def write_section(path: Path, name: str, record: dict, render: Callable[[dict[str, dict]], str]) -> None:
    """Put ``record`` (keyed by its ``device``) into section ``name`` of ``path`` and render it again."""
    begin, end_marker = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    stored = re.compile(rf"<!-- {re.escape(name)}:records (.*?) -->", re.S)
    text = path.read_text() if path.exists() else f"{TITLE}\n\n{INTRO}\n"
    start, end = text.find(begin), text.find(end_marker)
    if (start >= 0) != (end > start):
        sys.exit(f"{path}: found one of {begin} / {end_marker} without the other; fix the file by hand")
    old = text[start:end] if 0 <= start < end else ""
    found = stored.search(old)
    records = {r["device"]: r for r in json.loads(found.group(1))} if found else {}
    records[record["device"]] = record
    body = render(records) + f"\n<!-- {name}:records {json.dumps(list(records.values()))} -->\n"
    section = f"{begin}\n{body}{end_marker}"
    if old:
        text = text[:start] + section + text[end + len(end_marker):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def machine_line(record: dict) -> str:
    """``**device**, measured DATE: the machine`` for the section's footer."""
    m = record["machine"]
    gpu = f"GPU {m['gpu']} (CUDA {m['cuda']}), " if "gpu" in m else ""
    return (f"**{record['device']}**, measured {record['date_utc']}: {gpu}CPU {m['cpu']}, {m['cpu_count']} cores "
            f"(`os.cpu_count()`), torch {m['torch']} with {m['torch_threads']} threads, Python {m['python']}.  ")


def load_line(record: dict) -> str:
    """How long the run took and how busy the machine was meanwhile."""
    line = (f"Run of {record['run_seconds']:,.0f} s; 1-minute load average {record['load_average_at_start']} "
            "at the start")
    others = record["other_processes_cpu_seconds"]
    if others is not None:
        share = others / (record["run_seconds"] * record["machine"]["cpu_count"])
        line += f"; other processes used {others:,.1f} CPU-seconds during the run ({share:.0%} of the machine"
        line += f"; {record['others_include']})" if record.get("others_include") else ")"
    return line + ".  "
