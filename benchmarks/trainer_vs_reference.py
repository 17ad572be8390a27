"""Trainer speed against a plain PyTorch loop: vqtune's ``fit_vqvae`` vs ``reference_vqvae.py``, same model and data.

Loads the default images once (``load_images(DataConfig())``: random 32x32x3 crops of the scikit-image photos)
and trains the same VQ-VAE (the ``TrainConfig`` defaults, the paper's CIFAR model; equal parameter counts and,
under the same seed, the same initial weights, both checked) for the same number of optimizer steps, batch 64,
in two ways, in rotation (vqtune, reference, vqtune, reference, ...):

- vqtune: ``fit_vqvae`` with the default ``TrainConfig`` on the CPU, except ``quantizer.dead_code_steps`` (0 by
  default here: the reference has no codebook restarts, so both sides run the same algorithm and their losses
  can be compared; pass the schema default to ``--dead-code-steps`` to measure vqtune as configured out of
  the box). Figures are the trainer's own
  per-epoch ``train_images_per_s`` / ``val_images_per_s`` / ``train_recon_mse`` / ``val_recon_mse``.
- reference: ``benchmarks/reference_vqvae.py``, a loop as users commonly write it (a per-item ``Dataset``,
  ``DataLoader(batch_size=64, shuffle=True, num_workers=2, drop_last=True)``, ``.item()`` logging every step,
  contiguous tensors), timed the same way: a training epoch from the start of the pass over the loader to the
  end of its last step, an evaluation over the whole validation split.

A third side, the same reference loop with ``num_workers=0`` (batches made in the main process), runs in the
same rotation: it separates what the DataLoader's worker processes cost from what the model code costs.

Each run trains ``--epochs`` epochs (28 steps each on the default data); the first is warm-up and is left out.
Repeat i of every side uses seed ``--seed + i``. A side's figure for one run is images / seconds over its
measured epochs; the table gives the median [min-max] over the repeats, and the ratio is vqtune's median over
the reference's. Losses: the last epoch's mean training reconstruction MSE and the validation MSE after the last
epoch, medians over the repeats. The batch orders differ (vqtune's ``randperm`` vs the DataLoader's sampler), so
they are not bitwise equal; they count as equal within ``--loss-tolerance`` (relative difference of the medians).
If vqtune is below the 1.3x target (or with ``--profile``), a few steps of each side are profiled
(``torch.profiler``), to say where the time goes.

    python benchmarks/trainer_vs_reference.py                        # measure, print one JSON line
    python benchmarks/trainer_vs_reference.py --write BENCHMARKS.md  # also update this benchmark's section

The JSON line is the only thing written to stdout; progress goes to stderr. With ``--write``, only the text
between ``<!-- trainer_vs_reference:begin -->`` and ``<!-- trainer_vs_reference:end -->`` is replaced.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

import torch
from torch.profiler import ProfilerActivity, profile, schedule

import reference_vqvae as ref
from sections import LoadMeter, load_line, machine_line, write_section
from train_throughput import NOISY_SPREAD, describe_machine, describe_setting, fmt, log, summarize
from vqtune.config import TrainConfig
from vqtune.data import ImageData, load_images
from vqtune.train import Reporter, build_model, fit_vqvae

TARGET = 1.3
SIDES = ("vqtune", "reference", "reference_no_workers")
WORKERS = {"reference": 2, "reference_no_workers": 0}  # DataLoader worker processes of the reference loop
PROFILE_WAIT, PROFILE_WARMUP, PROFILE_ACTIVE = 4, 2, 16  # steps of one epoch (28 on the default data)
PROFILE_ROUNDS = 3  # profiles per side, in rotation; one alone moves by tens of percent on a 2-core machine
TOP_OPS = 8


class EpochCollector(Reporter):
    """Keeps each epoch's metrics and the time each step ended; optionally calls ``on_step`` (a profiler's
    ``step``) after every step."""

    def __init__(self, on_step=None) -> None:
        self.epochs: list[dict] = []
        self.step_ends: dict[int, list[float]] = {}
        self.steps_per_epoch = 0
        self._on_step = on_step

    def on_start(self, info) -> None:
        self.steps_per_epoch = info.steps_per_epoch

    def on_step(self, epoch: int, step: int) -> None:
        self.step_ends.setdefault(epoch, []).append(time.perf_counter())
        if self._on_step is not None:
            self._on_step()

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        self.epochs.append({k: float(metrics[k]) for k in
                            ("train_images_per_s", "val_images_per_s", "train_recon_mse", "val_recon_mse")})
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs of each side, in rotation (default 5: about 3 minutes on 2 CPU cores, "
                             "4 with profiles)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per run; the first is warm-up (default 3: 56 measured steps on the default data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of repeat 1 of every side; repeat i uses seed+i-1")
    parser.add_argument("--dead-code-steps", type=int, default=0,
                        help="vqtune's quantizer.dead_code_steps (default 0: no restarts, like the reference)")
    parser.add_argument("--loss-tolerance", type=float, default=0.10,
                        help="relative difference of the median losses still counted as equal (default 0.10)")
    parser.add_argument("--profile", action="store_true", help="profile even when the target is met")
    parser.add_argument("--write", type=Path, metavar="PATH", help="update this benchmark's section of PATH")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: one warm-up epoch and one measured")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    config = TrainConfig.model_validate({
        "optim": {"epochs": args.epochs},
        "quantizer": {"dead_code_steps": args.dead_code_steps},
        "device": "cpu",
    })
    meter = LoadMeter()
    log(f"load average {meter.load_average:.2f} at the start")
    data = load_images(config.data)
    check = check_same_model(config)
    log(f"{data.description}; {check['parameters']:,} parameters on both sides, same initial weights: "
        f"{check['identical_init']}")

    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        for side in SIDES:
            if side == "vqtune":
                run = run_vqtune(config, data, seed)
            else:
                run = run_reference(config, data, seed, WORKERS[side])
            runs[side].append(run)
            log(f"repeat {repeat + 1}/{args.repeats} {side:20s} (seed {seed}): train {run['train_images_per_s']:.0f} "
                f"images/s ({run['step_ms']:.0f} ms/step, {run['epoch_overhead_ms']:.0f} ms overhead per epoch), "
                f"eval {run['val_images_per_s']:.0f} images/s, train recon MSE {run['train_recon_mse']:.5f}, "
                f"val MSE {run['val_recon_mse']:.5f}")

    sides = {side: {key: summarize([r[key] for r in runs[side]])
                    for key in ("train_images_per_s", "val_images_per_s", "train_recon_mse", "val_recon_mse")}
             for side in SIDES}
    for side in SIDES:  # medians only: an overhead near zero makes summarize's relative spread meaningless
        for key in ("step_ms", "epoch_overhead_ms"):
            sides[side][key] = {"median": statistics.median(r[key] for r in runs[side]),
                                "values": [r[key] for r in runs[side]]}
    sides["reference"]["worker_cpu_share"] = summarize([r["worker_cpu_share"] for r in runs["reference"]])
    median = {side: {k: v["median"] for k, v in s.items()} for side, s in sides.items()}
    train_ratio = median["vqtune"]["train_images_per_s"] / median["reference"]["train_images_per_s"]
    eval_ratio = median["vqtune"]["val_images_per_s"] / median["reference"]["val_images_per_s"]
    pair_ratios = [ours["train_images_per_s"] / theirs["train_images_per_s"]
                   for ours, theirs in zip(runs["vqtune"], runs["reference"])]
    loss_diff = {key: median["vqtune"][key] / median["reference"][key] - 1
                 for key in ("train_recon_mse", "val_recon_mse")}
    log(f"train: vqtune {train_ratio:.2f}x the reference (target {TARGET}x: "
        f"{'met' if train_ratio >= TARGET else 'missed'}; per repeat {min(pair_ratios):.2f}-{max(pair_ratios):.2f}x); "
        f"eval: {eval_ratio:.2f}x")
    log(f"the reference's DataLoader workers used {median['reference']['worker_cpu_share']:.0%} of the machine's "
        f"CPU time while it trained")
    log(f"losses, vqtune vs reference: train recon MSE {loss_diff['train_recon_mse']:+.1%}, "
        f"val MSE {loss_diff['val_recon_mse']:+.1%} (tolerance {args.loss_tolerance:.0%})")
    for side in SIDES:
        s = sides[side]["train_images_per_s"]
        if s["spread"] > NOISY_SPREAD:
            log(f"  {side} train spread {s['spread']:.0%} > {NOISY_SPREAD:.0%}: the machine may have been busy")

    profiles = None
    if train_ratio < TARGET or args.profile:
        rounds = [{side: profile_side(side, config, data, args.seed) for side in SIDES}
                  for _ in range(PROFILE_ROUNDS)]
        profiles = {side: median_profile([r[side] for r in rounds]) for side in SIDES}
        for side, p in profiles.items():
            log(f"{side}, median of {PROFILE_ROUNDS} profiles: {p['step_ms']:.1f} ms/step, operators "
                f"{p['ops_ms']:.1f} (convolutions {p['conv_ms']:.1f}), in the DataLoader {p['data_wait_ms']:.1f}, "
                f"other {p['other_ms']:.1f}")

    record = {
        "benchmark": "trainer_vs_reference",
        "device": "cpu",
        "setting": describe_setting(config),
        "data": data.description,
        **check,
        "dead_code_steps": args.dead_code_steps,
        "steps_per_epoch": len(data.train) // config.optim.batch_size,
        "epochs_run": args.epochs,
        "epochs_measured": args.epochs - 1,
        "repeats": args.repeats,
        "seeds": [args.seed + i for i in range(args.repeats)],
        "sides": sides,
        "train_ratio": train_ratio,
        "eval_ratio": eval_ratio,
        "pair_train_ratios": pair_ratios,
        "target": TARGET,
        "target_met": train_ratio >= TARGET,
        "loss_relative_difference": loss_diff,
        "loss_tolerance": args.loss_tolerance,
        "losses_equal": all(abs(d) <= args.loss_tolerance for d in loss_diff.values()),
        "profiles": profiles,
        "runs": runs,
        **meter.record(),
        "machine": describe_machine(torch.device("cpu")),
        "command": shlex.join(["python", *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if args.write:
        trimmed = {k: v for k, v in record.items() if k != "runs"}
        write_section(args.write, "trainer_vs_reference", trimmed, render_section)
        log(f"updated the trainer_vs_reference section of {args.write}")
    print(json.dumps(record))


def check_same_model(config: TrainConfig) -> dict:
    """Both models, built under the same seed: parameter counts (must be equal) and whether every weight is."""
    torch.manual_seed(config.seed)
    ours = build_model(config, in_channels=3)
    torch.manual_seed(config.seed)
    theirs = ref.Model()
    counts = [sum(p.numel() for p in m.parameters()) for m in (ours, theirs)]
    assert counts[0] == counts[1], f"parameter counts differ: vqtune {counts[0]:,}, reference {counts[1]:,}"
    same = all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    same = same and torch.equal(ours.quantizer.embedding, theirs.vq.embedding)
    return {"parameters": counts[0], "identical_init": bool(same)}


def run_vqtune(config: TrainConfig, data: ImageData, seed: int) -> dict:
    collector = EpochCollector()
    with tempfile.TemporaryDirectory(prefix="vqtune-bench-") as scratch:
        run_config = config.model_copy(update={"seed": seed, "run_dir": Path(scratch) / "run"})
        fit_vqvae(run_config, collector, data=data)
    # Per-epoch rates back to seconds, so that a run's figure is images / seconds over its measured epochs.
    images = collector.steps_per_epoch * config.optim.batch_size
    measured = collector.epochs[1:]
    train_s = [images / e["train_images_per_s"] for e in measured]
    val_s = [len(data.val) / e["val_images_per_s"] for e in measured]
    step_ends = [collector.step_ends[epoch] for epoch in sorted(collector.step_ends)[1:]]
    return run_figures(images, len(data.val), train_s, val_s, step_ends, collector.epochs[-1]["train_recon_mse"],
                       collector.epochs[-1]["val_recon_mse"])


def run_reference(config: TrainConfig, data: ImageData, seed: int, num_workers: int) -> dict:
    torch.manual_seed(seed)
    model = ref.Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    train_loader, val_loader = ref.make_loaders(data.train, data.val, config.optim.batch_size, num_workers)
    train_s, val_s, worker_s, step_ends = [], [], [], []
    for epoch in range(config.optim.epochs):
        ends: list[float] = []
        workers_before = children_cpu_seconds()
        t0 = time.perf_counter()
        steps = ref.train_epoch(model, train_loader, optimizer, on_step=lambda: ends.append(time.perf_counter()))
        t1 = time.perf_counter()
        workers_after = children_cpu_seconds()  # the epoch's workers have exited and been joined by now
        val_mse = ref.evaluate(model, val_loader)
        t2 = time.perf_counter()
        if epoch:  # the first epoch is warm-up
            train_s.append(t1 - t0)
            val_s.append(t2 - t1)
            worker_s.append(workers_after - workers_before)
            step_ends.append(ends)
    images = len(steps) * config.optim.batch_size
    figures = run_figures(images, len(data.val), train_s, val_s, step_ends,
                          statistics.fmean(s["recon_error"] for s in steps), val_mse)
    if num_workers:
        figures["worker_cpu_share"] = sum(worker_s) / sum(train_s) / (os.cpu_count() or 1)
    return figures


def run_figures(train_images: int, val_images: int, train_s: list[float], val_s: list[float],
                step_ends: list[list[float]], train_mse: float, val_mse: float) -> dict:
    """One run's figures over its measured epochs.

    ``step_ends``: for each measured epoch, the time each step ended. The median interval between them is the
    steady-state step; what an epoch takes beyond steps x that is its overhead (starting the pass over the data,
    the first step's warm-up, ending the pass).
    """
    step_s = [statistics.median(b - a for a, b in zip(ends, ends[1:])) for ends in step_ends]
    overhead_s = [total - len(ends) * step for total, ends, step in zip(train_s, step_ends, step_s)]
    return {"train_images_per_s": train_images * len(train_s) / sum(train_s),
            "val_images_per_s": val_images * len(val_s) / sum(val_s),
            "train_recon_mse": train_mse, "val_recon_mse": val_mse,
            "step_ms": 1000 * statistics.median(step_s), "epoch_overhead_ms": 1000 * statistics.fmean(overhead_s),
            "train_seconds": train_s, "val_seconds": val_s}


def profile_side(side: str, config: TrainConfig, data: ImageData, seed: int) -> dict:
    """Where one side's training step spends its time: a torch.profiler trace of a few steps of one epoch.

    Steps 1 to PROFILE_WAIT + PROFILE_WARMUP are left out (allocator, oneDNN warm-up); the next PROFILE_ACTIVE
    are recorded. Figures are milliseconds per step on the main thread, profiler overhead included.
    """
    log(f"profiling {side}: {PROFILE_ACTIVE} steps")
    plan = schedule(wait=PROFILE_WAIT, warmup=PROFILE_WARMUP, active=PROFILE_ACTIVE, repeat=1)
    with profile(activities=[ProfilerActivity.CPU], schedule=plan) as prof:
        if side == "vqtune":
            with tempfile.TemporaryDirectory(prefix="vqtune-bench-") as scratch:
                one_epoch = config.model_copy(update={"seed": seed, "run_dir": Path(scratch) / "run",
                                                      "optim": config.optim.model_copy(update={"epochs": 1})})
                fit_vqvae(one_epoch, EpochCollector(on_step=prof.step), data=data)
        else:
            torch.manual_seed(seed)
            model = ref.Model()
            optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
            train_loader, _ = ref.make_loaders(data.train, data.val, config.optim.batch_size, WORKERS[side])
            ref.train_epoch(model, train_loader, optimizer, on_step=prof.step)
    events = prof.key_averages()
    step_events = [e for e in events if e.key.startswith("ProfilerStep")]
    steps = sum(e.count for e in step_events)
    per_step = lambda us: us / 1000 / steps  # noqa: E731  (microseconds in total -> ms per step)
    step_us = sum(e.cpu_time_total for e in step_events)
    data_us = sum(e.cpu_time_total for e in events if "DataLoader" in e.key)
    # Operator self time outside the DataLoader (unpickling a batch runs a few operators too).
    in_loader = sum(e.self_cpu_time_total for e in prof.events()
                    if e.name.startswith("aten::") and under_data_loader(e))
    ops = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: e.self_cpu_time_total,
                 reverse=True)
    ops_us = sum(e.self_cpu_time_total for e in ops) - in_loader
    result = {
        "steps": steps,
        "step_ms": per_step(step_us),
        "ops_ms": per_step(ops_us),
        "conv_ms": per_step(sum(e.self_cpu_time_total for e in ops if "convolution" in e.key)),
        "data_wait_ms": per_step(data_us),
        "op_ms": {e.key: per_step(e.self_cpu_time_total) for e in ops},
        "op_calls": {e.key: e.count / steps for e in ops},
    }
    log(f"  {result['step_ms']:.1f} ms/step")
    return result


def median_profile(rounds: list[dict]) -> dict:
    """The median of each figure over several profiles of one side, with its top operators by median self time."""
    med = {key: statistics.median(r[key] for r in rounds)
           for key in ("step_ms", "ops_ms", "conv_ms", "data_wait_ms")}
    op_ms = {op: statistics.median(r["op_ms"].get(op, 0.0) for r in rounds)
             for op in set().union(*(r["op_ms"] for r in rounds))}
    top = sorted(op_ms, key=op_ms.get, reverse=True)
    return {
        "steps": rounds[0]["steps"],
        "rounds": len(rounds),
        **med,
        # What no operator accounts for: the Python of the loop, model and optimizer, autograd bookkeeping.
        "other_ms": med["step_ms"] - med["ops_ms"] - med["data_wait_ms"],
        "step_ms_rounds": [r["step_ms"] for r in rounds],
        "top_ops": [{"op": op, "ms": op_ms[op], "calls": rounds[0]["op_calls"].get(op, 0.0)} for op in top[:TOP_OPS]],
        "op_ms": {op: round(op_ms[op], 3) for op in top if op_ms[op] >= 0.1},
    }


def under_data_loader(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if "DataLoader" in parent.name:
            return True
        parent = parent.cpu_parent
    return False


def children_cpu_seconds() -> float:
    t = os.times()
    return t.children_user + t.children_system


ROW_NAMES = {
    "vqtune": "vqtune `fit_vqvae`",
    "reference": "plain PyTorch loop, `num_workers=2`",
    "reference_no_workers": "plain PyTorch loop, `num_workers=0` (diagnostic)",
}


def render_section(records: dict[str, dict]) -> str:
    r = records["cpu"]
    s, m = r["sides"], r["machine"]
    measured_steps = r["steps_per_epoch"] * r["epochs_measured"]
    restarts = ("no codebook restarts (`quantizer.dead_code_steps: 0`; the reference has none, so both sides run "
                "the same algorithm)" if r["dead_code_steps"] == 0
                else f"codebook restarts after {r['dead_code_steps']} unused steps, which the reference does not have")
    lines = [
        "## Trainer vs a plain PyTorch loop",
        "",
        f"vqtune's trainer (`fit_vqvae` with the default `TrainConfig` on the CPU, {restarts}) against "
        f"`benchmarks/reference_vqvae.py`, a VQ-VAE loop written the way users commonly write one. Both have the same "
        f"model ({r['setting']}; {r['parameters']:,} parameters on both sides, "
        f"{'the same initial weights under the same seed' if r['identical_init'] else 'different initial weights'}). "
        f"The reference has an EMA quantizer with one-hot encodings by `scatter_` and per-batch perplexity, a "
        f"per-item `Dataset` under `DataLoader(batch_size=64, shuffle=True, num_workers=2, drop_last=True)`, "
        f"`.item()` logging every step and contiguous tensors. The data ({r['data']}) is loaded once and given to "
        f"all runs. Each run trains {r['epochs_run']} epochs of {r['steps_per_epoch']} steps; the first is "
        f"warm-up, so {measured_steps} optimizer steps are measured. Runs alternate (vqtune, reference, "
        f"reference without workers, vqtune, ...), {r['repeats']} of each. Repeat i of every side uses the same "
        f"seed (seeds {', '.join(map(str, r['seeds']))}).",
        "",
        "Train images/s counts optimizer steps only. For the reference, that is from the start of the pass over "
        "its DataLoader (worker start-up included) to the end of the last step. Eval images/s is over the "
        "whole validation split after each measured epoch. Figures are median [min-max] over the runs. Losses "
        "are the last epoch's mean training reconstruction MSE and the validation MSE after the last epoch "
        "(medians; pixels on the [0, 1] scale). *Steady step*: the median time between the ends of two "
        "consecutive training steps. *Overhead per epoch*: a measured epoch's training time beyond its steps "
        "times the steady step (starting and ending the pass over the data, slower first steps); medians over the "
        "runs. The `num_workers=0` row is the same reference loop with batches made in the main process; it is "
        "there to separate the DataLoader's share of the difference.",
        "",
        "| side | train images/s, median [min-max] | eval images/s, median [min-max] | final train recon MSE "
        "| val MSE | steady step, ms | overhead per epoch, ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in SIDES:
        lines.append(f"| {ROW_NAMES[side]} | {fmt(s[side]['train_images_per_s'])} "
                     f"| {fmt(s[side]['val_images_per_s'])} | {s[side]['train_recon_mse']['median']:.5f} "
                     f"| {s[side]['val_recon_mse']['median']:.5f} | {s[side]['step_ms']['median']:.1f} "
                     f"| {s[side]['epoch_overhead_ms']['median']:.0f} |")
    diff = r["loss_relative_difference"]
    train = {side: s[side]["train_images_per_s"]["median"] for side in SIDES}
    spreads = ", ".join(f"{s[side]['train_images_per_s']['spread']:.0%} ({side})" for side in SIDES)
    lines += [
        "",
        f"**Ratio (vqtune / reference with `num_workers=2`, medians): train {r['train_ratio']:.2f}x, eval "
        f"{r['eval_ratio']:.2f}x. Target {r['target']}x on training: {'met' if r['target_met'] else 'missed'}.** "
        f"Repeat by repeat (each vqtune run over the reference run after it), the training ratio ranged "
        f"{min(r['pair_train_ratios']):.2f}-{max(r['pair_train_ratios']):.2f}x; the training figures of a side "
        f"spread by {spreads} "
        f"(max-min over median). With many more steps per epoch (a larger dataset), the per-epoch overheads fade "
        f"and the training ratio tends to that of the steady steps: "
        f"{s['reference']['step_ms']['median'] / s['vqtune']['step_ms']['median']:.2f}x.",
        "",
        f"Losses after the same steps: vqtune's differ from the reference's by {diff['train_recon_mse']:+.1%} "
        f"(training reconstruction) and {diff['val_recon_mse']:+.1%} (validation). That is "
        f"{'equal' if r['losses_equal'] else 'not equal'} within the {r['loss_tolerance']:.0%} tolerance used here. "
        f"The two sides see the batches in different orders, so the values are not bitwise equal. For scale, "
        f"across seeds vqtune's validation MSE ranges {fmt_range(s['vqtune']['val_recon_mse'])} and the "
        f"reference's {fmt_range(s['reference']['val_recon_mse'])}.",
        "",
        f"The DataLoader's share: without worker processes the reference trains "
        f"{train['reference_no_workers'] / train['reference']:.2f}x as fast. With its 2 workers, a measured epoch "
        f"spends {s['reference']['epoch_overhead_ms']['median']:,.0f} ms beyond its steps (starting the workers, "
        f"waiting for the first batch, shutting them down), against "
        f"{s['reference_no_workers']['epoch_overhead_ms']['median']:,.0f} ms without them; the steady step is "
        f"{s['reference']['step_ms']['median']:.1f} ms against {s['reference_no_workers']['step_ms']['median']:.1f} "
        f"ms. The workers themselves used {s['reference']['worker_cpu_share']['median']:.0%} of the machine's CPU "
        f"time while the reference trained (median), on {m['cpu_count']} cores that also run torch's "
        f"{m['torch_threads']} threads. Against the loop without workers, vqtune is "
        f"{train['vqtune'] / train['reference_no_workers']:.2f}x: the rest of the difference, "
        f"from how a batch is made (one index into the uint8 tensor, against 64 items and a collate) and from the "
        f"model code (channels-last tensors; the quantizer's `bincount` and `index_add_` against one-hot matrices "
        f"and their matrix products).",
    ]
    if r["profiles"]:
        lines += ["", *render_profiles(r["profiles"])]
    lines += [
        "",
        machine_line(r),
        load_line(r),
        f"Command: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


def render_profiles(profiles: dict[str, dict]) -> list[str]:
    lines = [
        "### Where the time goes",
        "",
        f"`torch.profiler` over {profiles['vqtune']['steps']} training steps of each side (after "
        f"{PROFILE_WAIT + PROFILE_WARMUP} unrecorded ones), {profiles['vqtune']['rounds']} times in rotation; "
        f"each figure is the median of the {profiles['vqtune']['rounds']}, in milliseconds per step on the main "
        f"thread, profiler overhead included. *operators*: self time of every `aten::` operator outside the "
        f"DataLoader. *in the DataLoader*: time inside its `__next__` (waiting for a worker's batch, or making "
        f"the batch when there are no workers). *other*: the rest of the step, which no operator accounts for "
        f"(the Python of the loop, model and optimizer, autograd bookkeeping). A single profile's figures move by "
        f"tens of percent from one to the next on this machine; the step column gives each side's range.",
        "",
        "| side | step, ms [min-max] | operators, ms | of which convolutions, ms | in the DataLoader, ms "
        "| other, ms |",
        "|---|---|---|---|---|---|",
    ]
    for side, p in profiles.items():
        lines.append(f"| {ROW_NAMES[side]} | {p['step_ms']:.1f} [{min(p['step_ms_rounds']):.1f}-"
                     f"{max(p['step_ms_rounds']):.1f}] | {p['ops_ms']:.1f} | {p['conv_ms']:.1f} "
                     f"| {p['data_wait_ms']:.1f} | {p['other_ms']:.1f} |")
    ours, theirs = profiles["vqtune"], profiles["reference"]
    lines += [
        "",
        f"Convolutions (forward and backward, the same oneDNN kernels on every side; channels-last in vqtune) "
        f"take {ours['conv_ms'] / ours['step_ms']:.0%} of vqtune's profiled step. The reference's step over "
        f"vqtune's convolution time alone is {theirs['step_ms'] / ours['conv_ms']:.2f}x: the most a trainer with "
        f"these convolutions could gain over this loop in steady state if everything else cost nothing.",
    ]
    lines += ["", "Top operators by self time, ms per step (calls per step):", "",
              "| " + " | ".join(ROW_NAMES[side] for side in profiles) + " |", "|---" * len(profiles) + "|"]
    for row in zip(*(p["top_ops"] for p in profiles.values())):
        lines.append("| " + " | ".join(op_cell(op) for op in row) + " |")
    lines += ["", "Differences per step, ms, with the operators that differ most:", ""]
    for side, base, what in (("reference_no_workers", "vqtune", "Batch making and model code (the reference "
                                                                 "loop without workers minus vqtune)"),
                             ("reference", "reference_no_workers", "The DataLoader's 2 worker processes (the "
                                                                   "reference with workers minus without)")):
        lines.append(f"- {what}: {differences(profiles[side], profiles[base])}")
    return lines


def differences(profiled: dict, base: dict) -> str:
    """``profiled`` minus ``base``: the step and its parts, then the operators that differ most either way."""
    parts = ", ".join(f"{name} {profiled[key] - base[key]:+.1f}" for name, key in
                      (("operators", "ops_ms"), ("in the DataLoader", "data_wait_ms"), ("other", "other_ms")))
    a, b = profiled["op_ms"], base["op_ms"]
    diffs = sorted(((a.get(op, 0.0) - b.get(op, 0.0), op) for op in set(a) | set(b)), reverse=True)
    more = [f"`{op}` {d:+.1f}" for d, op in diffs[:TOP_OPS // 2] if d >= 0.1]
    less = [f"`{op}` {d:+.1f}" for d, op in reversed(diffs[-3:]) if d <= -0.1]
    return (f"step {profiled['step_ms'] - base['step_ms']:+.1f} ({parts}); operators: "
            + ", ".join(more + less or ["none differs by 0.1 ms or more"]) + ".")


def op_cell(op: dict) -> str:
    return f"`{op['op']}` {op['ms']:.1f} ({op['calls']:g})"


def fmt_range(stats: dict) -> str:
    return f"{stats['min']:.5f}-{stats['max']:.5f}"




if __name__ == "__main__":
    main()
