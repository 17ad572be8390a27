"""Stage-1 trainer throughput: training and evaluation images/s of ``fit`` at the paper's CIFAR setting.

Runs the trainer (``vqtune.train.fit``) on the default images with every setting but the epoch count at the
``TrainConfig`` defaults (the CIFAR-10 setting of van den Oord et al. 2017) and reads its own per-epoch
``train_images_per_s`` and ``val_images_per_s`` through a Reporter. The first epoch is warm-up and is left out.

    python benchmarks/train_throughput.py                        # measure; report on stderr, record on stdout
    python benchmarks/train_throughput.py --write BENCHMARKS.md  # also update its section there
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import records
from vqtune.config import DataConfig, TrainConfig
from vqtune.train import fit, resolve_device

SECTION = "train_throughput"


def describe_setting(config: TrainConfig) -> str:
    """The model and batch as the schema defaults make them (read from the config, not restated here)."""
    m, height_width = config.model, "x".join(map(str, config.data.size))
    return (f"hidden {m.hidden}, residual hidden {m.residual_hidden}, {m.residual_blocks} residual blocks, "
            f"{m.downsample} downsamplings, D {m.embedding_dim}, K {m.codebook_size}, "
            f"{'EMA' if config.quantizer.ema else 'loss-trained'} codebook, batch {config.optim.batch_size}, "
            f"{height_width} images, Adam lr {config.optim.lr:g}")


def render(recs: dict[str, dict]) -> list[str]:
    rows = [recs[d] for d in ("cpu", "cuda") if d in recs]
    lines = records.table(
        ["device", "train images/s, median [min-max]", "eval images/s, median [min-max]", "epochs measured"],
        [[records.device_name(r), records.fmt(r["train_images_per_s"]), records.fmt(r["val_images_per_s"]),
          f"{r['epochs_measured']} (of {r['epochs_run']})"] for r in rows])
    for r in rows:
        lines += ["", *records.setting_lines(r, f"Setting: the `TrainConfig` defaults: {r['setting']}.",
                                             f"Data: {r['data']}, {r['steps_per_epoch']} training steps per epoch.")]
    return lines


def main() -> None:
    parser = records.parser(__doc__, device=True)
    parser.add_argument("--epochs", type=int, default=6, help="epochs to run; the first is warm-up (default 6)")
    crops = DataConfig.model_fields["crops_per_image"].default
    parser.add_argument("--crops-per-image", type=int, default=crops,
                        help=f"random crops per photo (default {crops}, the schema's: about 3 s per epoch on 2 CPU "
                             "cores)")
    args = records.parse(parser, {SECTION: render})
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: one warm-up epoch and two measured")

    meter = records.LoadMeter()
    device = resolve_device(args.device)
    collector = records.Collector()
    with tempfile.TemporaryDirectory(prefix="vqtune-bench-") as scratch:
        config = TrainConfig.model_validate({"data": {"crops_per_image": args.crops_per_image},
                                             "optim": {"epochs": args.epochs}, "device": str(device),
                                             "run_dir": Path(scratch) / "run"})
        fit(config, collector)

    measured = collector.epochs[1:]
    record = records.new_record(
        SECTION, device.type, meter, setting=describe_setting(config), data=collector.info.data,
        steps_per_epoch=collector.info.steps_per_epoch, epochs_run=len(collector.epochs),
        epochs_measured=len(measured),
        train_images_per_s=records.summarize([e["train_images_per_s"] for e in measured]),
        val_images_per_s=records.summarize([e["val_images_per_s"] for e in measured]),
        per_epoch=collector.epochs)
    for key in ("train_images_per_s", "val_images_per_s"):
        records.warn_if_noisy(key, record[key])
    records.finish(args, record, {SECTION: render}, drop=["per_epoch"])


if __name__ == "__main__":
    main()
