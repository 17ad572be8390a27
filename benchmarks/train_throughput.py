"""Stage-1 trainer throughput: training and evaluation images/s of ``fit_vqvae`` at the paper's CIFAR setting.

Runs the real trainer (``vqtune.train.fit_vqvae``) on real images (the default ``skimage-photos`` source) with
every model, quantizer and optimiser setting but the epoch count at the ``TrainConfig`` defaults (the CIFAR-10
setting of van den Oord et al. 2017), for a few epochs, and reads the trainer's own
per-epoch ``train_images_per_s`` and ``val_images_per_s`` through a Reporter. The first epoch is warm-up
(allocator, oneDNN/cuDNN algorithm choice) and is left out; the figures are the median, min and max over the
other epochs. On CUDA the trainer runs as it always does: bf16 autocast, channels_last, dataset on the GPU.

    python benchmarks/train_throughput.py                      # measure, print a report and one JSON line
    python benchmarks/train_throughput.py --write BENCHMARKS.md  # also update this benchmark's section there

The JSON line is the only thing written to stdout; progress and the report go to stderr. With ``--write``,
only the text between ``<!-- train_throughput:begin -->`` and ``<!-- train_throughput:end -->`` is replaced, so
other benchmarks can keep their own sections in the same file. One row per device kind (cpu, cuda) is kept:
measuring on a GPU machine adds the GPU row without dropping the CPU one, and vice versa.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Mapping

import torch

from sections import machine_line, write_section
from vqtune.config import DataConfig, TrainConfig
from vqtune.train import Reporter, RunInfo, fit_vqvae, resolve_device

NOISY_SPREAD = 0.20  # (max - min) / median above this: the machine was probably busy


class EpochCollector(Reporter):
    """Keeps each epoch's throughput figures and tells the user how far the run has got."""

    def __init__(self) -> None:
        self.info: RunInfo | None = None
        self.epochs: list[dict] = []

    def on_start(self, info: RunInfo) -> None:
        self.info = info
        log(f"{info.data}; {info.steps_per_epoch} steps/epoch on {info.device}, {info.parameters:,} parameters")

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        keep = ("train_images_per_s", "val_images_per_s", "epoch_seconds")
        self.epochs.append({"epoch": epoch, **{k: float(metrics[k]) for k in keep}})
        log(f"epoch {epoch}{' (warm-up)' if epoch == 1 else ''}: train {metrics['train_images_per_s']:.0f} "
            f"images/s, eval {metrics['val_images_per_s']:.0f} images/s, {metrics['epoch_seconds']:.1f} s")
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    parser.add_argument("--epochs", type=int, default=6, help="epochs to run; the first is warm-up (default 6)")
    crops = DataConfig.model_fields["crops_per_image"].default
    parser.add_argument("--crops-per-image", type=int, default=crops,
                        help=f"random crops per photo (default {crops}, the schema's: about 3 s per epoch "
                             f"on 2 CPU cores)")
    parser.add_argument("--write", type=Path, metavar="PATH", help="update this benchmark's section of PATH")
    parser.add_argument("--run-dir", type=Path, help="keep the run directory here (default: a temporary one)")
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: one warm-up epoch and two measured")

    device = resolve_device(args.device)
    config = TrainConfig.model_validate({
        "data": {"crops_per_image": args.crops_per_image},
        "optim": {"epochs": args.epochs},
        "device": str(device),
    })
    collector = EpochCollector()
    with tempfile.TemporaryDirectory(prefix="vqtune-bench-") as scratch:
        config.run_dir = args.run_dir or Path(scratch) / "run"
        fit_vqvae(config, collector)

    measured = collector.epochs[1:]
    record = {
        "benchmark": "train_throughput",
        "device": device.type,
        "setting": describe_setting(config),
        "data": collector.info.data,
        "steps_per_epoch": collector.info.steps_per_epoch,
        "epochs_run": len(collector.epochs),
        "epochs_measured": len(measured),
        "train_images_per_s": summarize([e["train_images_per_s"] for e in measured]),
        "val_images_per_s": summarize([e["val_images_per_s"] for e in measured]),
        "per_epoch": collector.epochs,
        "machine": describe_machine(device),
        "command": shlex.join(["python", *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }

    for key in ("train_images_per_s", "val_images_per_s"):
        s = record[key]
        log(f"{key}: median {s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}] over {len(measured)} epochs")
        if s["spread"] > NOISY_SPREAD:
            log(f"  spread {s['spread']:.0%} > {NOISY_SPREAD:.0%}: the machine may have been busy "
                f"(load average {os.getloadavg()[0]:.2f}); consider re-running")
    if args.write:
        trimmed = {k: v for k, v in record.items() if k != "per_epoch"}
        write_section(args.write, "train_throughput", trimmed, render_section)
        log(f"updated the train_throughput section of {args.write}")
    print(json.dumps(record))


def summarize(values: list[float]) -> dict:
    median = statistics.median(values)
    return {"median": median, "min": min(values), "max": max(values),
            "spread": (max(values) - min(values)) / median, "values": values}


def describe_setting(config: TrainConfig) -> str:
    """The model and batch as the schema defaults make them (read from the config, not restated here)."""
    m, height_width = config.model, "x".join(map(str, config.data.size))
    return (f"hidden {m.hidden}, residual hidden {m.residual_hidden}, {m.residual_blocks} residual blocks, "
            f"{m.downsample} downsamplings, D {m.embedding_dim}, K {m.codebook_size}, "
            f"{'EMA' if config.quantizer.ema else 'loss-trained'} codebook, batch {config.optim.batch_size}, "
            f"{height_width} images, Adam lr {config.optim.lr:g}")


def describe_machine(device: torch.device) -> dict:
    machine = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
        machine["cuda"] = torch.version.cuda
    return machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def render_section(records: dict[str, dict]) -> str:
    rows = [records[d] for d in ("cpu", "cuda") if d in records]
    first = rows[0]
    lines = [
        "## Trainer throughput (stage 1)",
        "",
        f"Training and evaluation images/s of `fit_vqvae` at the paper's CIFAR-10 setting (the `TrainConfig` "
        f"defaults: {first['setting']}), on real images (random crops of the scikit-image photographs, the "
        f"default `skimage-photos` source; the split of each run is given below). The first epoch of each run "
        f"is warm-up and is excluded; the figures are the median [min-max], over the remaining epochs, of the "
        f"trainer's own per-epoch `train_images_per_s` (optimizer steps only, without evaluation and "
        f"checkpointing) and `val_images_per_s` (the whole validation split, no gradients). An evaluation "
        f"pass is short (a fraction of a second at the default split), so its figures vary more than the "
        f"training ones. On CUDA the trainer uses bf16 autocast, channels_last and keeps the dataset on the GPU.",
        "",
        "| device | train images/s, median [min-max] | eval images/s, median [min-max] | epochs measured |",
        "|---|---|---|---|",
    ]
    for r in rows:
        name = r["machine"].get("gpu") or f"{r['machine']['cpu']}, {r['machine']['torch_threads']} threads"
        lines.append(f"| {r['device']} ({name}) | {fmt(r['train_images_per_s'])} | {fmt(r['val_images_per_s'])} "
                     f"| {r['epochs_measured']} (of {r['epochs_run']}) |")
    if "cuda" not in records:
        lines += ["", "No CUDA device was available for this measurement; run "
                      "`python benchmarks/train_throughput.py --device cuda --write BENCHMARKS.md` on a GPU "
                      "machine to add one."]
    lines.append("")
    for r in rows:
        lines += [
            machine_line(r),
            f"Data: {r['data']}, {r['steps_per_epoch']} training steps per epoch.  ",
            f"Command: `{r['command']}`",
            "",
        ]
    return "\n".join(lines)


def fmt(stats: dict) -> str:
    return f"{stats['median']:,.0f} [{stats['min']:,.0f}-{stats['max']:,.0f}]"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
