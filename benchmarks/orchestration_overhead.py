"""Orchestration overhead: what ``vqtune run`` adds to each trial and each reported epoch.

The same trials of a near-zero-cost trainer (the real ``fit`` on a model and dataset so small that an epoch
takes milliseconds) run through ``run_study`` and as a plain loop calling ``fit`` on the configs the search ran;
at two epoch counts, with SQLite and with PostgreSQL (a throwaway local server).

    python benchmarks/orchestration_overhead.py                        # measure; record on stdout
    python benchmarks/orchestration_overhead.py --write BENCHMARKS.md  # also update its section there
"""

from __future__ import annotations

import datetime
import io
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import optuna
import torch
from rich.console import Console

import records
from vqtune.config import PARAM_TYPES, SearchSpace, TrainConfig, validate
from vqtune.train import fit
from vqtune.tune import run_study, start_ray

SECTION = "orchestration_overhead"
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
    """Every trial reports every epoch (no pruner), one at a time like the loop."""
    return validate(SearchSpace, {
        "study": study, "n_trials": n_trials, "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
        "perplexity": {"floor": 0}, "storage": storage_url, "resources": {"cpu": 1, "gpu": 0}, "max_concurrent": 1,
        "trial_dir": str(root / "trials"), "base": {**TINY, "optim": {**TINY["optim"], "epochs": epochs}},
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
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds = []
    try:
        for i, config in enumerate(configs):
            t0 = time.perf_counter()
            fit(config.model_copy(update={"run_dir": root / f"plain-{i}"}))
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
    records.log(f"{storage_kind}, {epochs} epochs: vqtune run {timing['total_s']:.1f} s (first trial {spans[0]:.1f} s, "
                f"then {statistics.median(spans[1:]):.3f} s + {statistics.median(gaps):.3f} s between trials); plain "
                f"loop {statistics.median(plain[1:]):.3f} s per trial -> {steady:.3f} s per trial")
    return timing


def main() -> None:
    parser = records.parser(__doc__, repeats=2)
    parser.add_argument("--trials", type=int, default=20, help="trials per run (default 20)")
    parser.add_argument("--epochs", type=int, nargs=2, default=(1, 11), metavar=("FEW", "MANY"),
                        help="the two epoch counts (default 1 11)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = records.parse(parser, {SECTION: render})
    few, many = args.epochs
    if not 1 <= few < many:
        parser.error("--epochs FEW MANY needs 1 <= FEW < MANY")

    meter = records.LoadMeter()
    runs: list[dict] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="vqtune-overhead-") as scratch:
        root = Path(scratch)
        storages = records.databases(stack, root, postgres=not args.no_postgres)
        t0 = time.perf_counter()
        start_ray(None, verbose=False)
        ray_start = time.perf_counter() - t0
        records.log(f"Ray started in {ray_start:.1f} s")
        for repeat in range(args.repeats):
            for epochs in (few, many):
                for kind, make in storages.items():
                    name = f"r{repeat}e{epochs}{kind}"
                    runs.append({**measure(kind, make(name), root / name, args.trials, epochs), "repeat": repeat})

    record = records.new_record(
        SECTION, "cpu", meter, setting=TINY, trials=args.trials, epochs=[few, many], repeats=args.repeats,
        ray_start_s=ray_start, runs=runs, summary=summarize(runs, storages=list(storages), few=few, many=many),
        others_include="they include Ray's processes, and the trials' workers among them")
    records.finish(args, record, {SECTION: render})


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


def render(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    few, many = r["epochs"]
    lines = records.table(
        ["storage", f"per trial, s (target <= {TARGET_PER_TRIAL_S})",
         f"per epoch report, ms (target <= {TARGET_PER_EPOCH_MS:.0f})", f"per trial at {few} / {many} epochs, s",
         "run start, s", "first worker, s", "wind-down, s", f"everything over {r['trials']} trials, s per trial",
         "plain loop per trial, s"],
        [[kind, f"{s['per_trial_s']:.3f} ({records.verdict(s['per_trial_s'] <= TARGET_PER_TRIAL_S)})",
          f"{s['per_epoch_ms']:.1f} ({records.verdict(s['per_epoch_ms'] <= TARGET_PER_EPOCH_MS)})",
          f"{s['per_trial_at_few_s']:.3f} / {s['per_trial_at_many_s']:.3f}", f"{s['start_s']:.2f}",
          f"{s['first_worker_extra_s']:.2f}", f"{s['wind_down_s']:.2f}", f"{s['per_trial_all_in_s']:.3f}",
          f"{s['plain_per_trial_s'][str(few)]:.3f} / {s['plain_per_trial_s'][str(many)]:.3f}"]
         for kind, s in r["summary"].items()])
    trainer = ", ".join(f"{part}.{key} {value}" for part, values in r["setting"].items()
                        for key, value in values.items())
    return [*lines, "", *records.setting_lines(
        r, f"Setting: {r['trials']} trials per run, at {few} and at {many} epochs, {r['repeats']} alternating "
           f"repeats of every setting; Ray's own start, once per `vqtune run`, took {r['ray_start_s']:.1f} s.",
        f"Trainer: {trainer}.")]


def headline(r: dict) -> list[tuple[str, str, str, bool]]:
    """The rows of the targets at a glance: (figure, measured, target, met)."""
    rows = []
    for kind, s in r["summary"].items():
        rows += [(f"`vqtune run` overhead per trial, {kind}", f"{s['per_trial_s']:.2f} s",
                  f"<= {TARGET_PER_TRIAL_S} s", s["per_trial_s"] <= TARGET_PER_TRIAL_S),
                 (f"`vqtune run` overhead per epoch report, {kind}", f"{s['per_epoch_ms']:.1f} ms",
                  f"<= {TARGET_PER_EPOCH_MS:.0f} ms", s["per_epoch_ms"] <= TARGET_PER_EPOCH_MS)]
    return rows


if __name__ == "__main__":
    main()
