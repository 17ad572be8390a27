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
