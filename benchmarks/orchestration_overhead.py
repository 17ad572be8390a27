"""Orchestration overhead: what ``vqtune run`` adds to each trial and each reported epoch.

The same N trials of a near-zero-cost trainer (the real ``fit_vqvae`` on a model and dataset so small that an
epoch takes milliseconds, with checkpoints, reconstructions and metrics written as always) run two ways, side by
side: through ``run_study`` (Ray Tune runs each trial in a worker, one at a time; the worker reports every epoch
to the Optuna study, asks the pruner, uploads artifacts and tells the end state; the driver asks the study for
each trial and keeps heartbeats), and as a plain Python loop calling ``fit_vqvae`` on the very configs the
search ran. The difference, divided by N, is the overhead per trial. It is measured at two epoch counts; the
growth of the per-trial overhead from one to the other, divided by the extra epochs, is the overhead per
reported epoch. Both with SQLite and with PostgreSQL (a throwaway local server). Ray's start is timed apart and
excluded, as are the run's start (call to first trial asked) and wind-down (last trial told to return), which
are given separately.

    python benchmarks/orchestration_overhead.py                      # measure, print a report and a JSON line
    python benchmarks/orchestration_overhead.py --write BENCHMARKS.md  # also update its section there
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import shlex
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import optuna
import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package: its throwaway PostgreSQL

from sections import LoadMeter, load_line, machine_line, write_section  # noqa: E402
from train_throughput import describe_machine, log  # noqa: E402
from vqtune.config import PARAM_TYPES, SearchSpace, TrainConfig, validate  # noqa: E402
from vqtune.train import Reporter, fit_vqvae  # noqa: E402
from vqtune.tune._runner import _ray, run_study  # noqa: E402

TARGET_PER_TRIAL_S = 0.5
TARGET_PER_EPOCH_MS = 20.0

# A trainer that costs next to nothing: 8x8 crops, 4 channels, no residual blocks, a codebook of 8.
TINY = {
    "data": {"source": "skimage-photos", "resolution": 8, "crops_per_image": 2},
    "model": {"hidden": 4, "residual_hidden": 2, "residual_blocks": 0, "downsample": 1, "embedding_dim": 2,
              "codebook_size": 8},
    "quantizer": {"dead_code_steps": 0},
    "optim": {"batch_size": 32},
}


def space_for(storage_url: str, root: Path, n_trials: int, epochs: int, study: str) -> SearchSpace:
    base = {**TINY, "optim": {**TINY["optim"], "epochs": epochs}}
    return validate(SearchSpace, {
        "study": study,
        "n_trials": n_trials,
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},      # every trial reports every epoch
        "perplexity": {"floor": 0},
        "storage": storage_url,
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 1,             # one at a time, like the loop
        "trial_dir": str(root / "trials"),
        "base": base,
        "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
                  "quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
    }, "orchestration benchmark space", tags=PARAM_TYPES)


def through_vqtune(space: SearchSpace) -> tuple[dict, list[TrainConfig]]:
    """Run the search; read each trial's span (asked -> told) and the gaps between trials from the study."""
    quiet = Console(file=io.StringIO(), width=200)
    wall0, t0 = datetime.datetime.now(), time.perf_counter()
    result = run_study(space, console=quiet)
    total = time.perf_counter() - t0
    trials = sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)
    if [t.state for t in trials] != [optuna.trial.TrialState.COMPLETE] * space.n_trials:
        sys.exit(f"expected {space.n_trials} COMPLETE trials, got {[t.state.name for t in trials]}")
    if any(len(t.intermediate_values) != space.base.optim.epochs for t in trials):
        sys.exit("a trial did not report every epoch")
    spans = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    gaps = [(b.datetime_start - a.datetime_complete).total_seconds() for a, b in zip(trials, trials[1:])]
    timing = {
        "total_s": total,
        "start_s": (trials[0].datetime_start - wall0).total_seconds(),
        "wind_down_s": total - (trials[-1].datetime_complete - wall0).total_seconds(),
        "spans_s": spans,
        "gaps_s": gaps,
    }
    configs = [TrainConfig.model_validate(t.user_attrs["train_config"]) for t in trials]
    return timing, configs


def plain_loop(configs: list[TrainConfig], root: Path, threads: int) -> list[float]:
    """The same trainings one after another, with the torch threads a trial's worker gets."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds = []
    try:
        for i, config in enumerate(configs):
            t0 = time.perf_counter()
            fit_vqvae(config.model_copy(update={"run_dir": root / f"plain-{i}"}), Reporter())
            seconds.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return seconds


def measure(storage_kind: str, url: str, root: Path, n_trials: int, epochs: int) -> dict:
    space = space_for(url, root, n_trials, epochs, f"overhead-{storage_kind}-{epochs}")
    timing, configs = through_vqtune(space)
    plain = plain_loop(configs, root / "plain", threads=int(space.resources.cpu))
    spans, gaps = timing["spans_s"], timing["gaps_s"]
    # Steady state: every trial after the first (which also starts the worker process), with the gap before it.
    steady = statistics.median(span + gap for span, gap in zip(spans[1:], gaps)) - statistics.median(plain[1:])
    timing.update({
        "storage": storage_kind, "epochs": epochs, "n_trials": n_trials, "plain_s": plain,
        "per_trial_overhead_s": steady,
        "first_worker_extra_s": spans[0] - statistics.median(spans[1:]),
        "per_trial_overhead_all_in_s": (timing["total_s"] - sum(plain)) / n_trials,
    })
    log(f"{storage_kind}, {epochs} epochs: vqtune run {timing['total_s']:.1f} s (start {timing['start_s']:.1f} s, "
        f"first trial {spans[0]:.1f} s, then {statistics.median(spans[1:]):.3f} s + "
        f"{statistics.median(gaps):.3f} s between trials, wind-down {timing['wind_down_s']:.1f} s); "
        f"plain loop {statistics.median(plain[1:]):.3f} s per trial -> {steady:.3f} s per trial")
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per run (default 20)")
    parser.add_argument("--epochs", type=int, nargs=2, default=(1, 11), metavar=("FEW", "MANY"),
                        help="the two epoch counts (default 1 11)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting, alternating (default 2)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--write", type=Path, metavar="PATH", help="update this benchmark's section of PATH")
    args = parser.parse_args()
    few, many = args.epochs
    if not 1 <= few < many:
        parser.error("--epochs FEW MANY needs 1 <= FEW < MANY")

    meter = LoadMeter()
    runs: list[dict] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="vqtune-overhead-") as scratch:
        root = Path(scratch)
        storages = {"sqlite": lambda name: f"sqlite:///{root / name}.db"}
        if not args.no_postgres:
            from tests.postgres import admin_connect, throwaway_postgres

            server = stack.enter_context(throwaway_postgres(root / "pg"))

            def postgres_db(name: str) -> str:
                connection = admin_connect(server)
                try:
                    connection.cursor().execute(f'CREATE DATABASE "{name}"')
                finally:
                    connection.close()
                return server.rsplit("/", 1)[0] + f"/{name}"

            storages["postgresql"] = postgres_db
        t0 = time.perf_counter()
        _ray(None, verbose=False)
        ray_start = time.perf_counter() - t0
        log(f"Ray started in {ray_start:.1f} s")
        for repeat in range(args.repeats):
            for epochs in (few, many):
                for kind, make in storages.items():
                    name = f"r{repeat}e{epochs}{kind}"
                    runs.append({**measure(kind, make(name), root / name, args.trials, epochs), "repeat": repeat})

    summary = summarize(runs, storages=list(storages), few=few, many=many)
    record = {
        "benchmark": "orchestration_overhead", "device": "cpu", "setting": TINY, "trials": args.trials,
        "epochs": [few, many], "repeats": args.repeats, "ray_start_s": ray_start, "runs": runs,
        "summary": summary, **meter.record(),
        "others_include": "they include Ray's processes, and the trials' workers among them",
        "machine": describe_machine(torch.device("cpu")),
        "command": shlex.join(["python", *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for kind, s in summary.items():
        log(f"{kind}: {s['per_trial_s']:.3f} s per trial (target {TARGET_PER_TRIAL_S}), "
            f"{s['per_epoch_ms']:.1f} ms per epoch report (target {TARGET_PER_EPOCH_MS:.0f})")
    if args.write:
        write_section(args.write, "orchestration_overhead", record, render_section)
        log(f"updated the orchestration_overhead section of {args.write}")
    print(json.dumps(record))


def summarize(runs: list[dict], storages: list[str], few: int, many: int) -> dict:
    """Medians over the repeats of each storage: per trial at FEW epochs, and per extra epoch."""
    out = {}
    for kind in storages:
        def median(epochs: int, key: str) -> float:
            return statistics.median(r[key] for r in runs if r["storage"] == kind and r["epochs"] == epochs)

        per_trial_few, per_trial_many = median(few, "per_trial_overhead_s"), median(many, "per_trial_overhead_s")
        per_epoch = (per_trial_many - per_trial_few) / (many - few)
        out[kind] = {
            "per_trial_s": per_trial_few - few * per_epoch,   # what a trial costs beyond its epochs' reports
            "per_trial_at_few_s": per_trial_few,
            "per_trial_at_many_s": per_trial_many,
            "per_trial_all_in_s": median(few, "per_trial_overhead_all_in_s"),
            "per_epoch_ms": per_epoch * 1000,
            "start_s": median(few, "start_s"),
            "first_worker_extra_s": median(few, "first_worker_extra_s"),
            "wind_down_s": median(few, "wind_down_s"),
            "plain_per_trial_s": {str(e): statistics.median(
                statistics.median(r["plain_s"][1:]) for r in runs if r["storage"] == kind and r["epochs"] == e)
                for e in (few, many)},
        }
    return out


def render_section(records: dict[str, dict]) -> str:
    r = records["cpu"]
    few, many = r["epochs"]
    lines = [
        "## Orchestration overhead of `vqtune run`",
        "",
        f"The same {r['trials']} trials of a near-zero-cost trainer run two ways, side by side in one process: "
        "through `run_study` (what `vqtune run` calls: Ray Tune runs each trial in a worker, one at a time; the "
        "worker reports every epoch to the Optuna trial and to Ray, asks the pruner, uploads artifacts and tells "
        "the end state; the driver asks the study for each trial and keeps heartbeats), and as a plain Python "
        "loop calling `fit_vqvae` on the configs the search ran, with the torch threads a trial gets. The trainer "
        "is the real one, writing its checkpoints and pictures, on a model and dataset so small that an epoch "
        "takes milliseconds (8x8 crops of the bundled photos, 4 channels, K 8). Each trial's span is read from "
        "the study (asked, then told). *Per trial*: the median, over every trial but the first, of its span and "
        "the gap before it, minus the loop's median per trial, with the epochs' share taken out; *per epoch "
        f"report*: how much that grows from {few} to {many} epochs, per extra epoch. Once per run, and outside "
        "those figures: the run's start (from the call to the first trial asked: opening the study, starting "
        "Ray Tune's loop), the first trial's extra time (Ray starts the worker process, which imports torch and "
        "vqtune; later trials reuse it), and the wind-down (last trial told to the return); Ray's own start, "
        f"once per `vqtune run`, took {r['ray_start_s']:.1f} s. Medians over {r['repeats']} alternating "
        "repeats of every setting.",
        "",
        f"| storage | per trial, s (target <= {TARGET_PER_TRIAL_S}) | per epoch report, ms (target <= "
        f"{TARGET_PER_EPOCH_MS:.0f}) | per trial at {few} / {many} epochs, s | run start, s | first worker, s "
        f"| wind-down, s | everything over {r['trials']} trials, s per trial | plain loop per trial, s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, s in r["summary"].items():
        plain = s["plain_per_trial_s"]
        lines.append(
            f"| {kind} | {s['per_trial_s']:.3f} ({_verdict(s['per_trial_s'] <= TARGET_PER_TRIAL_S)}) "
            f"| {s['per_epoch_ms']:.1f} ({_verdict(s['per_epoch_ms'] <= TARGET_PER_EPOCH_MS)}) "
            f"| {s['per_trial_at_few_s']:.3f} / {s['per_trial_at_many_s']:.3f} | {s['start_s']:.2f} "
            f"| {s['first_worker_extra_s']:.2f} | {s['wind_down_s']:.2f} | {s['per_trial_all_in_s']:.3f} "
            f"| {plain[str(few)]:.3f} / {plain[str(many)]:.3f} |")
    lines += ["", machine_line(r), load_line(r), f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


if __name__ == "__main__":
    main()
