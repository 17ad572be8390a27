"""BENCHMARKS.md: each benchmark script owns one section between its own markers.

The measured records are kept inside the section as JSON, one per device kind, so a run on a GPU machine adds
its row without dropping the CPU one, and the text is always rendered from every record.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
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


def machine_busy_seconds() -> float | None:
    """CPU-seconds all processes have spent busy since boot (Linux ``/proc/stat``; None elsewhere)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")  # guest time is already in user


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and of its finished children (DataLoader workers, spawned writers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """How busy the machine was during a run: started with the run, read by :meth:`record` at its end."""

    def __init__(self) -> None:
        self.load_average = os.getloadavg()[0]
        self.busy, self.own, self.start = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()

    def record(self) -> dict:
        """The fields :func:`load_line` reads. Other processes' CPU time, not the load average, shows
        interference: the load average counts this run too."""
        busy = machine_busy_seconds()
        others = None if busy is None or self.busy is None else busy - self.busy - (own_cpu_seconds() - self.own)
        return {"load_average_at_start": round(self.load_average, 2),
                "run_seconds": round(time.perf_counter() - self.start, 1),
                "other_processes_cpu_seconds": None if others is None else round(max(others, 0.0), 1)}


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
