"""Stage-2 prior throughput: the trainer's training latents/s and the sampling time of the Gated PixelCNN prior.

For each code grid (8x8: the default 32x32 images after two downsamplings; 32x32: 128x128 images), ``fit`` first
trains a tiny stage-1 model for one epoch, only to have a checkpoint to encode the images with (K at the
``ModelConfig`` default: the prior's cost depends on K and the grid, not on the code values); then ``fit`` runs
stage 2 on it, every prior setting at the ``PriorConfig`` defaults. Its first epoch is warm-up; each later epoch
is a repeat. The figures come through the Reporter: the trainer's own ``latents_per_s`` of each epoch and the
time between ``on_step`` calls. Sampling: ``GatedPixelCNN.sample`` of the prior ``fit`` returned, timed, or on
the CPU at 32x32 (minutes per draw) estimated from one evaluation per row, times the width.

    python benchmarks/prior_throughput.py                        # measure; record on stdout
    python benchmarks/prior_throughput.py --write BENCHMARKS.md  # also update its section there
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import records
from vqtune.config import ModelConfig, PriorConfig, TrainConfig
from vqtune.models import GatedPixelCNN
from vqtune.run_dir import VQVAE
from vqtune.train import fit, resolve_device

SECTION = "prior_throughput"
# Code grid side -> random crops per photo: 32 and 2 training steps of 64 grids per epoch from the 14 training
# photos, about the same latents per epoch on both grids.
GRIDS = {8: 147, 32: 10}
SAMPLE_BATCH = 64
# Stage 1 only encodes the images: the smallest model with the default codebook.
TINY_VQVAE = {"hidden": 4, "residual_hidden": 1, "residual_blocks": 0, "embedding_dim": 2}


def measure_grid(side: int, crops: int, repeats: int, device: torch.device, root: Path, timed: bool,
                 sample_repeats: int) -> dict:
    data = {"resolution": 4 * side, "crops_per_image": crops}
    images = records.Collector()
    stage1 = fit(TrainConfig.model_validate({"data": data, "model": TINY_VQVAE, "optim": {"epochs": 1},
                                             "quantizer": {"dead_code_steps": 0}, "device": str(device),
                                             "run_dir": root / f"vqvae-{side}"}), images)
    config = TrainConfig.model_validate({
        "data": data, "model": TINY_VQVAE, "device": str(device), "run_dir": root / f"prior-{side}",
        "prior": {"vqvae_checkpoint": stage1.run_dir / VQVAE.best, "epochs": repeats + 1}})
    records.log(f"{side}x{side} grid: training, {repeats} repeats after a warm-up epoch")
    collector = records.Collector()
    prior = fit(config, collector).model
    # A step's time: since the previous step ended or, for an epoch's first, since the last epoch was reported.
    epochs, info = collector.epochs, collector.info
    step_ms = records.summarize([1000 * (b - a) for before, e in zip(epochs, epochs[1:]) for a, b in
                                 itertools.pairwise([before["reported"], *collector.step_ends[e["epoch"]]])])
    del step_ms["values"]
    stage1_model = ", ".join(f"{k} {v}" for k, v in TINY_VQVAE.items())
    records.log(f"{side}x{side} grid: sampling, {'timed' if timed else 'estimated'}, {sample_repeats} repeats")
    return {"grid": f"{side}x{side}", "data": f"{images.info.data}, encoded by one epoch of a VQ-VAE of "
                                              f"{stage1_model}, K {stage1.model.quantizer.codebook_size}",
            "steps_per_epoch": info.steps_per_epoch, "parameters": info.parameters,
            "latents_per_epoch": info.steps_per_epoch * config.prior.batch_size * side * side,
            "train_latents_per_s": records.summarize([e["latents_per_s"] for e in epochs[1:]]), "step_ms": step_ms,
            **sample_seconds(prior, (side, side), sample_repeats, timed, check=side == min(GRIDS))}


def sample_seconds(model: GatedPixelCNN, grid: tuple[int, int], repeats: int, timed: bool, check: bool) -> dict:
    """Seconds to draw ``SAMPLE_BATCH`` code grids: the real ``sample`` call (``timed``) or its estimate.

    ``check``: also make the estimate on a timed grid and give the ratio of the two medians.
    """
    model.eval()
    generator = torch.Generator(model.embedding.weight.device).manual_seed(0)
    estimate_draw(model, grid, generator)  # warm-up: every shape a draw evaluates, once
    draw = timed_draw if timed else estimate_draw
    stats = records.summarize([draw(model, grid, generator) for _ in range(repeats)])
    evaluations = grid[0] * grid[1]
    result = {"sampling": "timed" if timed else "estimated", "sample_repeats": repeats, "sample_seconds": stats,
              "evaluations": evaluations, "ms_per_evaluation": 1000 * stats["median"] / evaluations}
    if check and timed:
        estimates = records.summarize([estimate_draw(model, grid, generator) for _ in range(repeats)])
        result.update(estimate_seconds=estimates, estimate_over_timed=estimates["median"] / stats["median"])
    records.log(f"  {stats['median']:.2f} s per draw, {result['ms_per_evaluation']:.1f} ms per evaluation")
    return result


def timed_draw(model: GatedPixelCNN, grid: tuple[int, int], generator: torch.Generator) -> float:
    """Seconds of one real reference ``sample`` call on ``grid`` (what the estimate models; the cached sampler is
    measured against it in benchmarks/sampling.py)."""
    synchronize(model)
    t0 = time.perf_counter()
    model.sample((SAMPLE_BATCH, *grid), generator=generator, method="reference")
    synchronize(model)
    return time.perf_counter() - t0


@torch.no_grad()
def estimate_draw(model: GatedPixelCNN, grid: tuple[int, int], generator: torch.Generator) -> float:
    """Seconds of a ``sample`` call on ``grid``, estimated: one timed evaluation per row, times the width.

    The body is ``GatedPixelCNN.sample``'s loop body at column 0 (temperature 1); every column of row r
    evaluates the same (B, r + 1, W) slice of the grid, so it costs the same.
    """
    height, width = grid
    codes = torch.zeros((SAMPLE_BATCH, height, width), dtype=torch.long, device=model.embedding.weight.device)
    synchronize(model)
    t0 = time.perf_counter()
    for r in range(height):
        logits = model(codes[:, : r + 1])[:, :, r, 0]
        codes[:, r, 0] = torch.multinomial(F.softmax(logits.float(), dim=1), 1, generator=generator)[:, 0]
    synchronize(model)
    return (time.perf_counter() - t0) * width


def synchronize(model: GatedPixelCNN) -> None:
    if model.embedding.weight.is_cuda:
        torch.cuda.synchronize()


def render(recs: dict[str, dict]) -> list[str]:
    rows = [recs[d] for d in ("cpu", "cuda") if d in recs]
    lines = records.table(
        ["device", "code grid", "training latents/s, median [min-max]", "step, ms, median [min-max]",
         "epochs x steps (latents per epoch)"],
        [[records.device_name(r), g["grid"], records.fmt(g["train_latents_per_s"]), records.fmt(g["step_ms"], ",.1f"),
          f"{r['repeats']} x {g['steps_per_epoch']} ({g['latents_per_epoch']:,})"] for r in rows for g in r["grids"]])
    lines += ["", *records.table(
        ["device", "code grid", "64-grid draw, s, median [min-max]", "how", "repeats", "evaluations",
         "ms per evaluation", "estimate over timed draw"],
        [[records.device_name(r), g["grid"], records.fmt(g["sample_seconds"], ",.2f"), g["sampling"],
          g["sample_repeats"], f"{g['evaluations']:,}", f"{g['ms_per_evaluation']:,.1f}",
          f"{g['estimate_over_timed']:.2f}" if "estimate_over_timed" in g else ""]
         for r in rows for g in r["grids"]])]
    for r in rows:
        lines += ["", *records.setting_lines(
            r, f"Setting: the `PriorConfig` defaults with K at the `ModelConfig` default: {r['setting']}; "
               f"{r['parameters']:,} parameters.",
            *(f"Data, {g['grid']} grid: {g['data']}." for g in r["grids"]))]
    return lines


def main() -> None:
    parser = records.parser(__doc__, repeats=5, device=True)
    parser.add_argument("--full-sampling", action="store_true",
                        help="on the CPU, time the real 32x32 draw once instead of estimating it (minutes)")
    args = records.parse(parser, {SECTION: render})
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")

    meter = records.LoadMeter()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    grids = []
    with tempfile.TemporaryDirectory(prefix="vqtune-prior-") as scratch:
        for side, crops in GRIDS.items():
            # A real 32x32 draw on the CPU takes minutes: estimated by default, timed once on request.
            timed = cuda or side == min(GRIDS) or args.full_sampling
            sample_repeats = 1 if timed and not cuda and side != min(GRIDS) else args.repeats
            grids.append(measure_grid(side, crops, args.repeats, device, Path(scratch), timed, sample_repeats))
    prior = PriorConfig()
    record = records.new_record(
        SECTION, device.type, meter, setting=f"channels {prior.channels}, {prior.layers} layers, kernel "
        f"{prior.kernel}, K {ModelConfig().codebook_size}, batch {prior.batch_size}, Adam lr {prior.lr:g}",
        parameters=grids[0]["parameters"], repeats=args.repeats, grids=grids)
    for g in grids:
        records.warn_if_noisy(f"{g['grid']} training latents/s", g["train_latents_per_s"])
    records.finish(args, record, {SECTION: render})


if __name__ == "__main__":
    main()
