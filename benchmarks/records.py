"""What every benchmark script shares: its command line, how it reads the trainer, its record, its sections.

A record is one run's figures with the setting, the machine, its load, the command and the date. It is kept as
JSON inside the script's first section of BENCHMARKS.md, one per device kind (a GPU run adds its rows without
dropping the CPU ones), and the sections' text, tables and setting lines, is always rendered from every record:
``--render-only`` renders it again without measuring. Prose that does not change with the figures is written
once, by hand, outside the markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Iterable, Mapping

from vqtune.train import Reporter, RunInfo

Render = Callable[[dict[str, dict]], list[str]]
NOISY_SPREAD = 0.20  # (max - min) / median above this: the machine was probably busy


def log(message: str) -> None:
    """Progress and reports go to stderr; stdout has only the record, as one JSON line."""
    print(message, file=sys.stderr, flush=True)


def parser(doc: str, repeats: int | None = None, device: bool = False) -> argparse.ArgumentParser:
    """``--write`` and ``--render-only``, and ``--repeats`` / ``--device`` when asked for."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--write", type=Path, metavar="PATH", help="update this benchmark's sections of PATH")
    p.add_argument("--render-only", action="store_true", help="render the sections of --write PATH again from "
                                                              "their records, measuring nothing")
    if repeats is not None:
        p.add_argument("--repeats", type=int, default=repeats, help=f"timed repeats (default {repeats})")
    if device:
        p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    return p


def parse(p: argparse.ArgumentParser, renders: dict[str, Render]) -> argparse.Namespace:
    """The arguments; with ``--render-only``, render the sections again and exit."""
    args = p.parse_args()
    if args.render_only:
        if not args.write:
            p.error("--render-only needs --write PATH")
        write(args.write, None, renders)
        sys.exit(0)
    return args


def finish(args: argparse.Namespace, record: dict, renders: dict[str, Render], drop: Iterable[str] = ()) -> None:
    """Log the sections; write them with ``--write`` (the record without its ``drop`` keys); print the record."""
    log("\n".join(line for render in renders.values() for line in render({record["device"]: record})))
    if args.write:
        write(args.write, {k: v for k, v in record.items() if k not in drop}, renders)
    print(json.dumps(record))


class Collector(Reporter):
    """What ``fit`` reports: the RunInfo, when each step ended, and each epoch's metrics with when they came.

    ``on_step``: called after every step too (a profiler's ``step``)."""

    def __init__(self, on_step: Callable[[], None] | None = None) -> None:
        self.info: RunInfo | None = None
        self.step_ends: dict[int, list[float]] = {}
        self.epochs: list[dict] = []
        self._on_step = on_step

    def on_start(self, info: RunInfo) -> None:
        self.info = info

    def on_step(self, epoch: int, step: int) -> None:
        self.step_ends.setdefault(epoch, []).append(time.perf_counter())
        if self._on_step is not None:
            self._on_step()

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        metrics = {k: float(v) for k, v in metrics.items()}
        self.epochs.append({**metrics, "epoch": epoch, "reported": time.perf_counter()})
        return False


def summarize(values: list[float]) -> dict:
    median = statistics.median(values)
    return {"median": median, "min": min(values), "max": max(values),
            "spread": (max(values) - min(values)) / median, "values": values}


def warn_if_noisy(name: str, stats: dict) -> None:
    if stats["spread"] > NOISY_SPREAD:
        log(f"{name}: spread {stats['spread']:.0%} > {NOISY_SPREAD:.0%}: the machine may have been busy")


def fmt(stats: dict, spec: str = ",.0f") -> str:
    """``median [min-max]``."""
    return f"{stats['median']:{spec}} [{stats['min']:{spec}}-{stats['max']:{spec}}]"


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def table(header: list[str], rows: Iterable[Iterable]) -> list[str]:
    return [f"| {' | '.join(header)} |", "|---" * len(header) + "|",
            *(f"| {' | '.join(map(str, row))} |" for row in rows)]


def databases(stack: ExitStack, root: Path, postgres: bool) -> dict[str, Callable[[str], str]]:
    """Storage kind -> a function making the URL of a new, empty database of that name: SQLite files under
    ``root``, and with ``postgres`` databases on a throwaway local PostgreSQL server, stopped with ``stack``."""
    kinds = {"sqlite": lambda name: f"sqlite:///{root / name}.db"}
    if postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package has the server
        from tests.postgres import admin_connect, throwaway_postgres

        server = stack.enter_context(throwaway_postgres(root / "pg"))

        def postgres_db(name: str) -> str:
            connection = admin_connect(server)
            try:
                connection.cursor().execute(f'CREATE DATABASE "{name}"')
            finally:
                connection.close()
            return server.rsplit("/", 1)[0] + f"/{name}"

        kinds["postgresql"] = postgres_db
    return kinds


def busy_seconds() -> float | None:
    """CPU-seconds all processes have spent busy since boot (Linux ``/proc/stat``; None elsewhere)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and of its finished children (DataLoader workers, spawned writers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """How busy the machine was during a run: started with the run, read by :meth:`record` at its end. Other
    processes' CPU time, not the load average, shows interference: the load average counts this run too."""

    def __init__(self) -> None:
        self.load_average = os.getloadavg()[0]
        self.busy, self.own, self.start = busy_seconds(), own_cpu_seconds(), time.perf_counter()
        log(f"1-minute load average {self.load_average:.2f} at the start")

    def record(self) -> dict:
        busy = busy_seconds()
        others = None if busy is None or self.busy is None else busy - self.busy - (own_cpu_seconds() - self.own)
        return {"load_average_at_start": round(self.load_average, 2),
                "run_seconds": round(time.perf_counter() - self.start, 1),
                "other_processes_cpu_seconds": None if others is None else round(max(others, 0.0), 1)}


def new_record(benchmark: str, device: str, meter: LoadMeter, **figures) -> dict:
    """The record of a run that is ending: its figures, the load, the machine, the command and the date."""
    import torch

    machine = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
               "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    if device == "cuda":
        machine.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda)
    return {"benchmark": benchmark, "device": device, **figures, **meter.record(), "machine": machine,
            "command": shlex.join(["python", *sys.argv]),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(record: dict) -> str:
    """``cpu (AMD EPYC, 2 threads)`` or ``cuda (NVIDIA H100)``: a table's first column."""
    m = record["machine"]
    return f"{record['device']} ({m.get('gpu') or str(m['cpu']) + ', ' + str(m['torch_threads']) + ' threads'})"


def setting_lines(record: dict, *extra: str) -> list[str]:
    """The machine and the date, the run's length and load, ``extra`` lines (the setting), and the command."""
    m = record["machine"]
    gpu = f"GPU {m['gpu']} (CUDA {m['cuda']}), " if "gpu" in m else ""
    lines = [f"**{record['device']}**, measured {record['date_utc']}: {gpu}CPU {m['cpu']}, {m['cpu_count']} cores "
             f"(`os.cpu_count()`), torch {m['torch']} with {m['torch_threads']} threads, Python {m['python']}."]
    if "run_seconds" in record:
        load = (f"Run of {record['run_seconds']:,.0f} s; 1-minute load average {record['load_average_at_start']} "
                "at the start")
        if (others := record["other_processes_cpu_seconds"]) is not None:
            share = others / (record["run_seconds"] * m["cpu_count"])
            include = f"; {record['others_include']}" if record.get("others_include") else ""
            load += f"; other processes used {others:,.1f} CPU-seconds during the run ({share:.0%} of the machine"
            load += include + ")"
        lines.append(load + ".")
    lines += [*extra, f"Command: `{record['command']}`"]
    return [line + "  " for line in lines[:-1]] + lines[-1:]


def read_records(text: str, name: str) -> dict[str, dict]:
    """The records kept in section ``name`` of a BENCHMARKS.md text, by device."""
    found = re.search(rf"<!-- {re.escape(name)}:records (.*?) -->", text, re.S)
    return {r["device"]: r for r in json.loads(found.group(1))} if found else {}


def write(path: Path, record: dict | None, renders: dict[str, Render]) -> None:
    """Add ``record`` (None: none) to the records kept in the first of the ``renders`` sections of ``path``, and
    render every one of those sections from them; a missing section is added at the end of the file."""
    text = path.read_text() if path.exists() else ""
    first = next(iter(renders))
    records = read_records(text, first)
    if record is not None:
        records[record["device"]] = record
    if not records:
        sys.exit(f"{path}: no records in its section {first}; measure first")
    for name, render in renders.items():
        stored = f"\n<!-- {name}:records {json.dumps(list(records.values()))} -->" if name == first else ""
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        section = begin + "\n" + "\n".join(render(records)) + "\n" + stored + "\n" + end
        start, stop = text.find(begin), text.find(end)
        if (start >= 0) != (stop > start):
            sys.exit(f"{path}: found one of {begin} / {end} without the other; fix the file by hand")
        if start < 0:
            text = (text.rstrip() + "\n\n" if text.strip() else "") + section + "\n"
        else:
            text = text[:start] + section + text[stop + len(end):]
    path.write_text(text)
    log(f"updated {', '.join(renders)} of {path}")
