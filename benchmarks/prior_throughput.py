"""Stage-2 prior throughput: training latents/s and sampling time of the Gated PixelCNN prior.

Builds the prior with every setting at the ``PriorConfig`` defaults and K at the ``ModelConfig`` default, and
measures it on two code grids: 8x8 (the latent grid of the default 32x32 images after two downsamplings) and
32x32 (sixteen times as many latents per grid).

Training: the training step of ``fit_prior`` (Adam at ``prior.lr``, batches of ``prior.batch_size`` grids,
cross-entropy of the logits against the codes, bf16 autocast on CUDA only) on code grids drawn uniformly at
random: the cost of a step does not depend on the code values. Warm-up steps are left out; each repeat runs a
fixed number of steps, and the figures are the median, min and max latents/s over the repeats.

Sampling: ``model.eval()`` then ``model.sample((64, h, w), generator=...)``, which makes one network
evaluation per position (h*w in all), timed as a whole after a warm-up. On the CPU a real 32x32 draw (1,024
evaluations, most of them over many rows) takes several minutes on 2 cores, so by default it is estimated
instead: one timed evaluation per row (the loop body of ``GatedPixelCNN.sample`` at column 0), times the
width, since every column of a row evaluates the same shapes. The same estimate is made on the 8x8 grid and
compared with its real draw, as a check. ``--full-sampling`` times the real 32x32 call on the CPU (once);
on CUDA it is always timed.

    python benchmarks/prior_throughput.py                        # measure, print a report and one JSON line
    python benchmarks/prior_throughput.py --write BENCHMARKS.md  # also update this benchmark's section there

The JSON line is the only thing written to stdout; progress goes to stderr. With ``--write``, only the text
between ``<!-- prior_throughput:begin -->`` and ``<!-- prior_throughput:end -->`` is replaced, keeping one row
per device kind (cpu, cuda), as ``train_throughput.py`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sections import LoadMeter, load_line, machine_line, write_section
from train_throughput import NOISY_SPREAD, describe_machine, fmt, log, summarize
from vqtune.config import ModelConfig, PriorConfig
from vqtune.models import GatedPixelCNN
from vqtune.train import resolve_device
from vqtune.train._prior import build_prior

# Code grid side -> training steps per repeat: the same 131,072 latents per repeat on both grids.
GRIDS = {8: 32, 32: 2}
WARMUP_STEPS = 2
SAMPLE_BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed repeats of training (each a fixed number of steps) and of sampling (default 5)")
    parser.add_argument("--full-sampling", action="store_true",
                        help="on the CPU, time the real 32x32 draw once instead of estimating it "
                             "(several minutes on 2 cores)")
    parser.add_argument("--write", type=Path, metavar="PATH", help="update this benchmark's section of PATH")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    prior, codebook_size = PriorConfig(), ModelConfig().codebook_size
    small = min(GRIDS)
    meter = LoadMeter()
    grids = []
    for side, steps in GRIDS.items():
        torch.manual_seed(0)
        model = build_prior(prior, codebook_size).to(device)
        log(f"{side}x{side} grid: training, {args.repeats} repeats of {steps} steps of {prior.batch_size} grids")
        latents_per_s = train_repeats(model, prior, (side, side), steps, args.repeats, device)
        # A real 32x32 draw on the CPU takes minutes: estimated by default, timed once on request.
        timed = cuda or side == small or args.full_sampling
        repeats = 1 if timed and not cuda and side != small else args.repeats
        log(f"{side}x{side} grid: sampling 64 grids, {'timed' if timed else 'estimated'}, {repeats} repeats")
        sampling = sample_seconds(model, (side, side), repeats, device, timed, check=side == small)
        grids.append({"grid": f"{side}x{side}", "train_steps_per_repeat": steps,
                      "train_latents_per_s": summarize(latents_per_s), **sampling})

    record = {
        "benchmark": "prior_throughput",
        "device": device.type,
        "setting": (f"channels {prior.channels}, {prior.layers} layers, kernel {prior.kernel}, K {codebook_size}, "
                    f"batch {prior.batch_size}, Adam lr {prior.lr:g}"),
        "batch_size": prior.batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),  # the same on every grid
        "warmup_steps": WARMUP_STEPS,
        "repeats": args.repeats,
        "grids": grids,
        **meter.record(),
        "machine": describe_machine(device),
        "command": shlex.join(["python", *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for g in grids:
        t, s = g["train_latents_per_s"], g["sample_seconds"]
        log(f"{g['grid']}: train {fmt(t)} latents/s; sample 64 grids {s['median']:.2f} s "
            f"({g['sampling']}, {g['sample_repeats']} repeats), {g['ms_per_evaluation']:.1f} ms per evaluation")
        if t["spread"] > NOISY_SPREAD:
            log(f"  training spread {t['spread']:.0%} > {NOISY_SPREAD:.0%}: the machine may have been busy (other "
                f"processes used {record['other_processes_cpu_seconds']} CPU-s during the run); consider re-running")
    if args.write:
        write_section(args.write, "prior_throughput", record, render_section)
        log(f"updated the prior_throughput section of {args.write}")
    print(json.dumps(record))


def train_repeats(model: GatedPixelCNN, prior: PriorConfig, grid: tuple[int, int], steps: int, repeats: int,
                  device: torch.device) -> list[float]:
    """Latents/s of each timed repeat of ``steps`` training steps, as in ``fit_prior``'s epoch loop."""
    cuda = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=prior.lr)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    train = torch.randint(0, model.codebook_size, (steps * prior.batch_size, *grid), device=device)
    model.train()
    results = []
    for repeat in range(repeats + 1):  # repeat 0 is warm-up
        order = torch.randperm(len(train), device=device)
        run = WARMUP_STEPS if repeat == 0 else steps
        synchronize(device)
        t0 = time.perf_counter()
        for step in range(run):
            batch = train[order[step * prior.batch_size : (step + 1) * prior.batch_size]]
            with autocast:
                logits = model(batch)
            loss = F.cross_entropy(logits.float(), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        seconds = time.perf_counter() - t0
        if repeat:
            results.append(run * batch.numel() / seconds)
            log(f"  repeat {repeat}: {results[-1]:,.0f} latents/s ({seconds:.1f} s)")
    return results


def sample_seconds(model: GatedPixelCNN, grid: tuple[int, int], repeats: int, device: torch.device,
                   timed: bool, check: bool) -> dict:
    """Seconds to draw ``SAMPLE_BATCH`` code grids: the real ``sample`` call (``timed``) or its estimate.

    ``check``: also make the estimate on a timed grid and give the ratio of the two medians.
    """
    model.eval()
    generator = torch.Generator(device).manual_seed(0)
    estimate_draw(model, grid, generator)  # warm-up: every shape a draw evaluates, once
    draw = timed_draw if timed else estimate_draw
    seconds = []
    for repeat in range(repeats):
        seconds.append(draw(model, grid, generator))
        log(f"  repeat {repeat + 1}: {seconds[-1]:.2f} s")
    stats = summarize(seconds)
    evaluations = grid[0] * grid[1]
    result = {"sampling": "timed" if timed else "estimated", "sample_repeats": repeats, "sample_seconds": stats,
              "evaluations": evaluations, "ms_per_evaluation": 1000 * stats["median"] / evaluations}
    if check and timed:
        estimates = [estimate_draw(model, grid, generator) for _ in range(repeats)]
        result["estimate_seconds"] = summarize(estimates)
        result["estimate_over_timed"] = statistics.median(estimates) / stats["median"]
        log(f"  estimate: {statistics.median(estimates):.2f} s, {result['estimate_over_timed']:.2f} x the timed draw")
    return result


def timed_draw(model: GatedPixelCNN, grid: tuple[int, int], generator: torch.Generator) -> float:
    """Seconds of one real ``sample`` call on ``grid``."""
    device = model.embedding.weight.device
    synchronize(device)
    t0 = time.perf_counter()
    model.sample((SAMPLE_BATCH, *grid), generator=generator)
    synchronize(device)
    return time.perf_counter() - t0


@torch.no_grad()
def estimate_draw(model: GatedPixelCNN, grid: tuple[int, int], generator: torch.Generator) -> float:
    """Seconds of a ``sample`` call on ``grid``, estimated: one timed evaluation per row, times the width.

    The body is ``GatedPixelCNN.sample``'s loop body at column 0 (temperature 1, no labels); every column
    of row r evaluates the same (B, r + 1, W) slice of the grid, so it costs the same.
    """
    height, width = grid
    device = model.embedding.weight.device
    codes = torch.zeros((SAMPLE_BATCH, height, width), dtype=torch.long, device=device)
    synchronize(device)
    t0 = time.perf_counter()
    for r in range(height):
        logits = model(codes[:, : r + 1])[:, :, r, 0]
        codes[:, r, 0] = torch.multinomial(F.softmax(logits.float(), dim=1), 1, generator=generator)[:, 0]
    synchronize(device)
    return (time.perf_counter() - t0) * width


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def render_section(records: dict[str, dict]) -> str:
    rows = [records[d] for d in ("cpu", "cuda") if d in records]
    first = rows[0]
    lines = [
        "## Prior throughput (stage 2)",
        "",
        f"The Gated PixelCNN prior at the `PriorConfig` defaults with K at the `ModelConfig` default "
        f"({first['setting']}; {first['parameters']:,} parameters), on two code grids: 8x8, the latent grid of "
        f"the default 32x32 images, and 32x32, sixteen times as many latents per grid.",
        "",
        f"**Training**: the training step of `fit_prior` (model from `build_prior`, Adam, cross-entropy of the "
        f"logits against the codes, bf16 autocast on CUDA only) on code grids drawn uniformly at random: the "
        f"cost of a step does not depend on the code values. After {first['warmup_steps']} warm-up steps, each "
        f"repeat runs a fixed number of steps (last column); figures are the median "
        f"[min-max] latents/s over the repeats.",
        "",
        "| device | code grid | training latents/s, median [min-max] | repeats x steps (latents per repeat) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        for g in r["grids"]:
            lines.append(f"| {r['device']} ({device_name(r)}) | {g['grid']} | {fmt(g['train_latents_per_s'])} "
                         f"| {len(g['train_latents_per_s']['values'])} x {g['train_steps_per_repeat']} "
                         f"({latents_per_repeat(r, g):,}) |")
    lines += [
        "",
        "**Sampling**: `model.eval()`, then `model.sample((64, h, w), generator=...)`, one network evaluation "
        "per position (h*w in all) in raster order; seconds for the whole 64-grid draw, median [min-max] over "
        "the repeats, after a warm-up. *timed* is the real call. *estimated* (the 32x32 grid on the CPU, where "
        "a real draw takes minutes) times one evaluation per row, the loop body of `sample` at column 0, and "
        "multiplies by the width, since every column of a row evaluates the same shapes; on the 8x8 grid both "
        "are made, and the ratio of the two is given as a check. `--full-sampling` times the real 32x32 call "
        "on the CPU (once).",
        "",
        "| device | code grid | 64-grid draw, s, median [min-max] | how | repeats | evaluations | ms per evaluation |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for g in r["grids"]:
            s = g["sample_seconds"]
            lines.append(f"| {r['device']} ({device_name(r)}) | {g['grid']} | {s['median']:,.2f} "
                         f"[{s['min']:,.2f}-{s['max']:,.2f}] | {g['sampling']} | {g['sample_repeats']} "
                         f"| {g['evaluations']:,} | {g['ms_per_evaluation']:,.1f} |")
    checks = [f"{r['device']} {g['grid']}: {g['estimate_over_timed']:.2f}"
              for r in rows for g in r["grids"] if "estimate_over_timed" in g]
    if checks:
        lines += ["", f"Estimate over timed draw (1.00: the estimate is exact): {'; '.join(checks)}."]
    if "cuda" not in records:
        lines += ["", "No CUDA device was available for this measurement; run "
                      "`python benchmarks/prior_throughput.py --device cuda --write BENCHMARKS.md` on a GPU "
                      "machine to add one."]
    lines.append("")
    for r in rows:
        lines += [
            machine_line(r),
            load_line(r),
            f"Command: `{r['command']}`",
            "",
        ]
    return "\n".join(lines)




def latents_per_repeat(record: dict, grid: dict) -> int:
    height, width = map(int, grid["grid"].split("x"))
    return grid["train_steps_per_repeat"] * record["batch_size"] * height * width


def device_name(record: dict) -> str:
    m = record["machine"]
    return m.get("gpu") or f"{m['cpu']}, {m['torch_threads']} threads"


if __name__ == "__main__":
    main()
