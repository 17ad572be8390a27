"""Trainer speed against a plain PyTorch loop: vqtune's ``fit`` vs ``reference_vqvae.py``, same model and data.

Loads the default images once and trains the same VQ-VAE (the ``TrainConfig`` defaults; equal parameter counts
and, under the same seed, the same initial weights, both checked) for the same optimizer steps, three ways in
rotation: vqtune's ``fit`` (figures from its Reporter), the reference loop with a 2-worker DataLoader, and the
same loop without workers. ``--dead-code-steps`` defaults to 0 (the reference has no codebook restarts, so both
sides run the same algorithm and their losses can be compared). Below the 1.3x target, or with ``--profile``,
a few steps of each side are profiled to say where the time goes.

    python benchmarks/trainer_vs_reference.py                        # measure; record on stdout
    python benchmarks/trainer_vs_reference.py --write BENCHMARKS.md  # also update its sections there
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

import records
import reference_vqvae as ref
from train_throughput import describe_setting
from vqtune.config import TrainConfig
from vqtune.data import ImageData, load_images
from vqtune.train import build_model, fit

SECTION = "trainer_vs_reference"
TARGET = 1.3
SIDES = ("vqtune", "reference", "reference_no_workers")
ROW_NAMES = {
    "vqtune": "vqtune `fit`",
    "reference": "plain PyTorch loop, `num_workers=2`",
    "reference_no_workers": "plain PyTorch loop, `num_workers=0` (diagnostic)",
}
WORKERS = {"reference": 2, "reference_no_workers": 0}  # DataLoader worker processes of the reference loop
PROFILE_WAIT, PROFILE_WARMUP, PROFILE_ACTIVE = 4, 2, 16  # steps of one epoch (28 on the default data)
PROFILE_ROUNDS = 3  # profiles per side, in rotation; one alone moves by tens of percent on a 2-core machine
TOP_OPS = 8


def main() -> None:
    parser = records.parser(__doc__, repeats=5)
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per run; the first is warm-up (default 3: 56 measured steps on the default data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of repeat 1 of every side; repeat i uses seed+i-1")
    parser.add_argument("--dead-code-steps", type=int, default=0,
                        help="vqtune's quantizer.dead_code_steps (default 0: no restarts, like the reference)")
    parser.add_argument("--loss-tolerance", type=float, default=0.10,
                        help="relative difference of the median losses still counted as equal (default 0.10)")
    parser.add_argument("--profile", action="store_true", help="profile even when the target is met")
    args = records.parse(parser, RENDERS)
    if args.epochs < 2 or args.repeats < 1:
        parser.error("needs --epochs 2 or more (one warm-up epoch) and --repeats 1 or more")

    config = TrainConfig.model_validate({"optim": {"epochs": args.epochs},
                                         "quantizer": {"dead_code_steps": args.dead_code_steps}, "device": "cpu"})
    meter = records.LoadMeter()
    data = load_images(config.data)
    check = check_same_model(config)
    records.log(f"{data.description}; {check['parameters']:,} parameters on both sides, same initial weights: "
                f"{check['identical_init']}")

    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        for side in SIDES:
            run = run_vqtune(config, data, seed) if side == "vqtune" else run_reference(config, data, seed, side)
            runs[side].append(run)
            records.log(f"repeat {repeat + 1}/{args.repeats} {side}: {run['train_images_per_s']:.0f} train images/s")

    sides = {side: {key: records.summarize([r[key] for r in runs[side]])
                    for key in ("train_images_per_s", "val_images_per_s", "train_recon_mse", "val_recon_mse")}
             for side in SIDES}
    for side in SIDES:  # medians only: an overhead near zero makes summarize's relative spread meaningless
        for key in ("step_ms", "epoch_overhead_ms"):
            sides[side][key] = {"median": statistics.median(r[key] for r in runs[side]),
                                "values": [r[key] for r in runs[side]]}
        records.warn_if_noisy(f"{side} train images/s", sides[side]["train_images_per_s"])
    sides["reference"]["worker_cpu_share"] = records.summarize([r["worker_cpu_share"] for r in runs["reference"]])
    median = {side: {k: v["median"] for k, v in s.items()} for side, s in sides.items()}
    train_ratio = median["vqtune"]["train_images_per_s"] / median["reference"]["train_images_per_s"]
    loss_diff = {key: median["vqtune"][key] / median["reference"][key] - 1
                 for key in ("train_recon_mse", "val_recon_mse")}

    profiles = None
    if train_ratio < TARGET or args.profile:
        rounds = [{side: profile_side(side, config, data, args.seed) for side in SIDES}
                  for _ in range(PROFILE_ROUNDS)]
        profiles = {side: median_profile([r[side] for r in rounds]) for side in SIDES}

    record = records.new_record(
        SECTION, "cpu", meter, setting=describe_setting(config), data=data.description, **check,
        dead_code_steps=args.dead_code_steps, steps_per_epoch=len(data.train) // config.optim.batch_size,
        epochs_run=args.epochs, epochs_measured=args.epochs - 1, repeats=args.repeats,
        seeds=[args.seed + i for i in range(args.repeats)], sides=sides, train_ratio=train_ratio,
        eval_ratio=median["vqtune"]["val_images_per_s"] / median["reference"]["val_images_per_s"],
        pair_train_ratios=[ours["train_images_per_s"] / theirs["train_images_per_s"]
                           for ours, theirs in zip(runs["vqtune"], runs["reference"])],
        target=TARGET, target_met=train_ratio >= TARGET, loss_relative_difference=loss_diff,
        loss_tolerance=args.loss_tolerance,
        losses_equal=all(abs(d) <= args.loss_tolerance for d in loss_diff.values()), profiles=profiles, runs=runs)
    records.finish(args, record, RENDERS, drop=["runs"])


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
    collector = records.Collector()
    with tempfile.TemporaryDirectory(prefix="vqtune-bench-") as scratch:
        run_config = config.model_copy(update={"seed": seed, "run_dir": Path(scratch) / "run"})
        fit(run_config, collector, data=data)
    # Per-epoch rates back to seconds, so that a run's figure is images / seconds over its measured epochs.
    images = collector.info.steps_per_epoch * config.optim.batch_size
    measured = collector.epochs[1:]
    train_s = [images / e["train_images_per_s"] for e in measured]
    val_s = [len(data.val) / e["val_images_per_s"] for e in measured]
    step_ends = [collector.step_ends[epoch] for epoch in sorted(collector.step_ends)[1:]]
    return run_figures(images, len(data.val), train_s, val_s, step_ends, collector.epochs[-1]["train_recon_mse"],
                       collector.epochs[-1]["val_recon_mse"])


def run_reference(config: TrainConfig, data: ImageData, seed: int, side: str) -> dict:
    torch.manual_seed(seed)
    model = ref.Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    train_loader, val_loader = ref.make_loaders(data.train, data.val, config.optim.batch_size, WORKERS[side])
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
    if WORKERS[side]:
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
    records.log(f"profiling {side}: {PROFILE_ACTIVE} steps")
    plan = schedule(wait=PROFILE_WAIT, warmup=PROFILE_WARMUP, active=PROFILE_ACTIVE, repeat=1)
    with profile(activities=[ProfilerActivity.CPU], schedule=plan) as prof:
        if side == "vqtune":
            with tempfile.TemporaryDirectory(prefix="vqtune-bench-") as scratch:
                one_epoch = config.model_copy(update={"seed": seed, "run_dir": Path(scratch) / "run",
                                                      "optim": config.optim.model_copy(update={"epochs": 1})})
                fit(one_epoch, records.Collector(on_step=prof.step), data=data)
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
    records.log(f"  {result['step_ms']:.1f} ms/step")
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


def render(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    s = r["sides"]
    restarts = ("no codebook restarts, as in the reference" if r["dead_code_steps"] == 0
                else "codebook restarts, which the reference does not have")
    lines = records.table(
        ["side", "train images/s, median [min-max]", "train spread", "eval images/s, median [min-max]",
         "final train recon MSE", "val MSE, median [min-max]", "steady step, ms", "overhead per epoch, ms"],
        [[ROW_NAMES[side], records.fmt(s[side]["train_images_per_s"]),
          f"{s[side]['train_images_per_s']['spread']:.0%}", records.fmt(s[side]["val_images_per_s"]),
          f"{s[side]['train_recon_mse']['median']:.5f}", records.fmt(s[side]["val_recon_mse"], ".5f"),
          f"{s[side]['step_ms']['median']:.1f}", f"{s[side]['epoch_overhead_ms']['median']:.0f}"] for side in SIDES])
    return [*lines, "", *figures_table(r), "", *records.setting_lines(
        r,
        f"Setting: vqtune with `quantizer.dead_code_steps: {r['dead_code_steps']}` ({restarts}); the model of both "
        f"sides: {r['setting']}; {r['parameters']:,} parameters on both sides, "
        f"{'the same' if r['identical_init'] else 'different'} initial weights under the same seed.",
        f"Runs: {r['repeats']} of each side in rotation (seeds {', '.join(map(str, r['seeds']))}), "
        f"{r['epochs_run']} epochs of {r['steps_per_epoch']} steps each, the first warm-up: "
        f"{r['steps_per_epoch'] * r['epochs_measured']} measured steps.",
        f"Data: {r['data']}.")]


def figures_table(r: dict) -> list[str]:
    s, diff, tolerance = r["sides"], r["loss_relative_difference"], f"{r['loss_tolerance']:.0%}"
    train = {side: s[side]["train_images_per_s"]["median"] for side in SIDES}
    step = {side: s[side]["step_ms"]["median"] for side in SIDES}
    equal = "equal" if r["losses_equal"] else "**not equal**"
    return records.table(["figure", "value"], [
        [f"training images/s, vqtune / reference, medians (target {r['target']}x)",
         f"{r['train_ratio']:.2f}x: {records.verdict(r['target_met'])}"],
        ["the same, repeat by repeat (each vqtune run over the reference run after it)",
         f"{min(r['pair_train_ratios']):.2f}-{max(r['pair_train_ratios']):.2f}x"],
        ["eval images/s, vqtune / reference", f"{r['eval_ratio']:.2f}x"],
        ["steady step, reference / vqtune", f"{step['reference'] / step['vqtune']:.2f}x"],
        ["training images/s, reference without workers / with",
         f"{train['reference_no_workers'] / train['reference']:.2f}x"],
        ["training images/s, vqtune / reference without workers",
         f"{train['vqtune'] / train['reference_no_workers']:.2f}x"],
        ["the reference's DataLoader workers' CPU time while it trained, share of the machine (median)",
         f"{s['reference']['worker_cpu_share']['median']:.0%}"],
        [f"final train recon MSE, vqtune vs reference (equal within {tolerance})",
         f"{diff['train_recon_mse']:+.1%}: {equal}"],
        [f"val MSE, vqtune vs reference (equal within {tolerance})", f"{diff['val_recon_mse']:+.1%}: {equal}"],
    ])


def render_profiles(recs: dict[str, dict]) -> list[str]:
    profiles = recs["cpu"]["profiles"]
    if not profiles:
        return ["No profile in the last run (the target was met; `--profile` profiles anyway)."]
    conv = profiles["vqtune"]["conv_ms"]
    lines = records.table(
        ["side", "step, ms [min-max]", "operators, ms", "of which convolutions, ms", "convolutions' share",
         "in the DataLoader, ms", "other, ms", "step over vqtune's convolution time"],
        [[ROW_NAMES[side], f"{p['step_ms']:.1f} [{min(p['step_ms_rounds']):.1f}-{max(p['step_ms_rounds']):.1f}]",
          f"{p['ops_ms']:.1f}", f"{p['conv_ms']:.1f}", f"{p['conv_ms'] / p['step_ms']:.0%}",
          f"{p['data_wait_ms']:.1f}", f"{p['other_ms']:.1f}", f"{p['step_ms'] / conv:.2f}x"]
         for side, p in profiles.items()])
    lines += ["", *records.table([f"top operators by self time, {ROW_NAMES[side]}" for side in profiles],
                                 ([f"`{op['op']}` {op['ms']:.1f} ({op['calls']:g})" for op in row]
                                  for row in zip(*(p["top_ops"] for p in profiles.values()))))]
    lines += ["", *records.table(
        ["difference, ms per step", "step", "operators", "in the DataLoader", "other", "operators that differ most"],
        [[what, *differences(profiles[side], profiles[base])] for side, base, what in (
            ("reference_no_workers", "vqtune", "batch making and model code (the reference without workers "
                                               "minus vqtune)"),
            ("reference", "reference_no_workers", "the DataLoader's 2 worker processes (the reference with "
                                                  "workers minus without)"))])]
    p = profiles["vqtune"]
    return lines + ["", f"Profiles: {p['steps']} recorded training steps of each side after "
                        f"{PROFILE_WAIT + PROFILE_WARMUP} unrecorded ones, {p['rounds']} rounds in rotation; "
                        f"figures are medians of the {p['rounds']}, ms per step (calls per step)."]


def differences(profiled: dict, base: dict) -> list[str]:
    """``profiled`` minus ``base``: the step and its parts, then the operators that differ most either way."""
    parts = [f"{profiled[key] - base[key]:+.1f}" for key in ("step_ms", "ops_ms", "data_wait_ms", "other_ms")]
    a, b = profiled["op_ms"], base["op_ms"]
    diffs = sorted(((a.get(op, 0.0) - b.get(op, 0.0), op) for op in set(a) | set(b)), reverse=True)
    more = [f"`{op}` {d:+.1f}" for d, op in diffs[:TOP_OPS // 2] if d >= 0.1]
    less = [f"`{op}` {d:+.1f}" for d, op in reversed(diffs[-3:]) if d <= -0.1]
    return [*parts, ", ".join(more + less) or "none differs by 0.1 ms or more"]


def headline(r: dict) -> list[tuple[str, str, str, bool]]:
    """The row of the targets at a glance: (figure, measured, target, met)."""
    pairs = r["pair_train_ratios"]
    return [("Trainer vs a plain PyTorch loop, training images/s, with equal losses",
             f"{r['train_ratio']:.2f}x (median; runs {min(pairs):.2f}-{max(pairs):.2f}x)", f">= {r['target']}x",
             r["train_ratio"] >= r["target"] and r["losses_equal"])]


RENDERS = {SECTION: render, "trainer_profile": render_profiles}


if __name__ == "__main__":
    main()
