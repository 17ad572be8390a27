"""Quantizers at K of about 1000: the default EMA codebook against factorized cosine codes, the rotation trick and FSQ.

Per dataset (Fashion-MNIST at its native 28x28, random 32x32 crops of the bundled photos), four stage-1 models
that differ only in ``quantizer`` (and K), trained by ``fit`` with the same data, model, epochs and seed:

- ``vq``: the default quantizer, an EMA codebook of K 1024 codes of D 64 (with the schema's dead-code restarts);
- ``factorized``: the same with ``codebook_dim: 8`` and ``normalize: true`` (codes looked up as cosines in 8
  dimensions through a learned projection);
- ``rotation``: the same with ``estimator: rotation`` (the rotation trick in place of straight-through);
- ``fsq``: ``kind: fsq`` with levels [8, 5, 5, 5] (K 1000, no codebook).

Each is followed by the same small Gated PixelCNN on its codes (stage 2 of the same ``fit``), for the two-stage
bits/dim. Stage-1 figures are those of the epoch whose checkpoint the prior encodes (the lowest val_recon_mse),
the two-stage bits/dim that of the prior's lowest val_nll; train images/s is the median of the stage-1 epochs
after the first. Target: at least two alternatives keep >= 90% of their K codes active on the validation split
where the default keeps fewer, with a val_recon_mse at most 5% above the default's.

``--dead-code-steps N`` runs the same comparison with the three VQ variants' ``dead_code_steps`` set to N (0: no
code is ever re-seeded, as in libraries without restarts); FSQ, which has no codebook, is unchanged, and the
default it is judged against is the default VQ with the same N. Such a run is recorded in a section of its own,
``quantizers_dead_code_steps_N``, next to the run with the schema's restarts (section ``quantizers``).

    python benchmarks/quantizers.py                          # measure (minutes: see BENCHMARKS.md); record on stdout
    python benchmarks/quantizers.py --write BENCHMARKS.md    # also update its section
    python benchmarks/quantizers.py --dead-code-steps 0 --write BENCHMARKS.md   # restarts off, its own section
    python benchmarks/quantizers.py --epochs 1 --prior-epochs 1 --max-images 700 --crops-per-image 8   # bench-quick

Needs the Fashion-MNIST IDX files (`make fashion-mnist`).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import records
from vqtune.config import TrainConfig, VQConfig, validate
from vqtune.data import load_images
from vqtune.errors import VqtuneError
from vqtune.train import fit

SECTION = "quantizers"  # the run with the schema's dead-code restarts; other dead_code_steps: section_of(N)
SCHEMA_DEAD_CODE_STEPS = VQConfig.model_fields["dead_code_steps"].default
ACTIVE_TARGET = 0.90     # an alternative keeps at least 90% of its K codes active on the validation split...
MSE_SLACK = 0.05         # ...with a val_recon_mse at most 5% above the default's...
ALTERNATIVES_NEEDED = 2  # ...and at least two alternatives do so, where the default keeps fewer than 90%
DEFAULT = "vq"
VARIANTS = {  # name -> (label, quantizer section; model.codebook_size applies to vq only)
    "vq": ("default VQ (EMA, D 64)", {}),
    "factorized": ("VQ, codebook_dim 8, normalize", {"codebook_dim": 8, "normalize": True}),
    "rotation": ("VQ, rotation trick", {"estimator": "rotation"}),
    "fsq": ("FSQ [8, 5, 5, 5]", {"kind": "fsq", "levels": [8, 5, 5, 5]}),
}
CODEBOOK_SIZE = 1024
DATASETS = {  # name -> data section
    "fashion-mnist": {"source": "fashion-mnist", "resolution": 28},
    "photos": {"source": "skimage-photos", "resolution": 32, "val_fraction": 0.25},
}
MODEL = {"hidden": 64, "residual_hidden": 32, "residual_blocks": 2, "downsample": 2, "embedding_dim": 64}
OPTIM = {"lr": 1e-3, "batch_size": 64}
PRIOR = {"channels": 32, "layers": 4, "lr": 1e-3, "batch_size": 64}


def section_of(dead_code_steps: int | None) -> str:
    """The section a run is recorded in: ``quantizers`` with the schema's restarts, else one per value."""
    if dead_code_steps is None or dead_code_steps == SCHEMA_DEAD_CODE_STEPS:
        return SECTION
    return f"{SECTION}_dead_code_steps_{dead_code_steps}"


def quantizer_sections(dead_code_steps: int | None) -> dict[str, dict]:
    """Variant -> its quantizer section: the VQ variants' with ``dead_code_steps`` when it is not the schema's."""
    if section_of(dead_code_steps) == SECTION:
        return {v: q for v, (_, q) in VARIANTS.items()}
    return {v: q if q.get("kind") == "fsq" else {**q, "dead_code_steps": dead_code_steps}
            for v, (_, q) in VARIANTS.items()}


def steps_of(r: dict) -> int:
    """The VQ variants' dead_code_steps in a record (records made before it was kept used the schema's)."""
    return r.get("dead_code_steps", SCHEMA_DEAD_CODE_STEPS)


def restarts_note(steps: int) -> str:
    """How a run's restarts differ from the schema's: `` without restarts``, `` dead_code_steps N`` or nothing."""
    if steps == SCHEMA_DEAD_CODE_STEPS:
        return ""
    return " without restarts" if steps == 0 else f" with dead_code_steps {steps}"


def label(variant: str, steps: int) -> str:
    """A variant's name in the tables: a VQ variant's says so when its restarts are not the schema's."""
    name, quantizer = VARIANTS[variant]
    return name if quantizer.get("kind") == "fsq" else name + restarts_note(steps)


def config_of(dataset: str, variant: str, args, seed: int, run_dir: Path) -> TrainConfig:
    """The whole two-stage config of one variant: only ``quantizer`` and K differ between the variants."""
    quantizer = quantizer_sections(args.dead_code_steps)[variant]
    data = {**DATASETS[dataset], **({"max_images": args.max_images} if dataset == "fashion-mnist"
                                    else {"crops_per_image": args.crops_per_image})}
    model = {**MODEL, **({} if quantizer.get("kind") == "fsq" else {"codebook_size": CODEBOOK_SIZE})}
    return validate(TrainConfig, {
        "data": data, "model": model, "quantizer": quantizer, "optim": {**OPTIM, "epochs": args.epochs},
        "prior": {**PRIOR, "epochs": args.prior_epochs}, "seed": seed, "device": "cpu", "run_dir": str(run_dir),
    }, f"benchmarks/quantizers.py, {dataset} {variant}")


def train_variant(config: TrainConfig, data, variant: str, seed: int) -> dict:
    t0 = time.perf_counter()
    result = fit(config, data=data)
    fit_s = time.perf_counter() - t0
    stage1, stage2 = result.stage_history["vqvae"], result.stage_history["prior"]
    best = min(stage1, key=lambda m: m["val_recon_mse"])  # the best.pt the prior encodes
    prior = min(stage2, key=lambda m: m["val_nll"])
    speeds = [m["train_images_per_s"] for m in (stage1[1:] or stage1)]
    k = config.codebook_size
    run = {"variant": variant, "seed": seed, "codebook_size": k, "best_epoch": int(best["epoch"]),
           "active_codes": int(best["val_active_codes"]), "active_share": best["val_active_codes"] / k,
           "val_perplexity": best["val_perplexity"], "val_recon_mse": best["val_recon_mse"],
           "stage1_bits_per_dim": best["val_bits_per_dim"], "bits_per_dim": prior["val_bits_per_dim"],
           "bits_per_dim_unigram": prior["val_bits_per_dim_unigram"],
           "distortion_bits_per_dim": prior["val_distortion_bits_per_dim"],
           "train_images_per_s": statistics.median(speeds), "fit_s": fit_s,
           "active_by_epoch": [int(m["val_active_codes"]) for m in stage1]}
    records.log(f"  {variant:<10} seed {seed}: {run['active_codes']}/{k} active ({run['active_share']:.0%}), "
                f"perplexity {run['val_perplexity']:.0f}, MSE {run['val_recon_mse']:.5f}, "
                f"{run['bits_per_dim']:.3f} bits/dim, {run['train_images_per_s']:.0f} img/s, {fit_s:.0f} s")
    return run


def judge(runs: list[dict]) -> dict:
    """Per seed, which alternatives meet the target against that seed's default; an alternative meets it on the
    dataset when it does so on every seed."""
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["variant"], r["seed"]): r for r in runs}
    checks = {}
    for variant in VARIANTS:
        if variant == DEFAULT:
            continue
        per_seed = []
        for seed in seeds:
            alt, base = by[(variant, seed)], by[(DEFAULT, seed)]
            mse_change = alt["val_recon_mse"] / base["val_recon_mse"] - 1
            per_seed.append({"seed": seed, "active": alt["active_share"] >= ACTIVE_TARGET,
                             "default_fewer": base["active_share"] < ACTIVE_TARGET,
                             "mse": mse_change <= MSE_SLACK, "mse_change": mse_change})
        checks[variant] = {"met": all(c["active"] and c["default_fewer"] and c["mse"] for c in per_seed),
                           "seeds": per_seed}
    met = [v for v, c in checks.items() if c["met"]]
    return {"alternatives": checks, "meeting": met, "met": len(met) >= ALTERNATIVES_NEEDED}


def measure(dataset: str, args, root: Path) -> dict:
    first = config_of(dataset, DEFAULT, args, args.seeds[0], root / "probe")
    try:
        data = load_images(first.data)
    except VqtuneError as exc:
        sys.exit(f"{exc}\n(make fashion-mnist installs the data)")
    height, width = (side >> first.model.downsample for side in first.data.size)
    records.log(f"{dataset}: {data.description}; {len(data.val)} x {height}x{width} = "
                f"{len(data.val) * height * width:,} validation latents")
    runs = [train_variant(config_of(dataset, variant, args, seed, root / dataset / f"{variant}-{seed}"), data,
                          variant, seed)
            for seed in args.seeds for variant in VARIANTS]
    return {"dataset": dataset, "data": data.description, "grid": f"{height}x{width}", "val_images": len(data.val),
            "val_latents": len(data.val) * height * width, "train_images": len(data.train),
            "steps_per_epoch": len(data.train) // min(OPTIM["batch_size"], len(data.train)),
            "data_config": first.data.model_dump(mode="json", exclude_none=True, exclude={"path", "cache_dir"}),
            "runs": runs, "target": judge(runs)}


def main() -> None:
    parser = records.parser(__doc__)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=12, help="stage-1 epochs of every variant (default 12)")
    parser.add_argument("--prior-epochs", type=int, default=4, help="epochs of every prior (default 4)")
    parser.add_argument("--max-images", type=int, default=3500,
                        help="Fashion-MNIST images kept, train and val in the official 6:1 (default 3500)")
    parser.add_argument("--crops-per-image", type=int, default=128, help="photos: random crops per photo (default 128)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, each a full set of runs (default 0)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core); on a machine "
                                                     "other work keeps busy, 1 avoids threads waiting on each other")
    parser.add_argument("--dead-code-steps", type=int, metavar="N",
                        help="the VQ variants' quantizer.dead_code_steps (0: no restarts; default: the schema's, "
                             f"{SCHEMA_DEAD_CODE_STEPS}); another value than the schema's is recorded in its own "
                             "section, quantizers_dead_code_steps_N")
    known, _ = parser.parse_known_args()
    if known.dead_code_steps is not None and known.dead_code_steps < 0:
        parser.error("--dead-code-steps must be 0 or more")
    section = section_of(known.dead_code_steps)
    args = records.parse(parser, {section: render})
    if args.threads:
        torch.set_num_threads(args.threads)

    meter = records.LoadMeter()
    with tempfile.TemporaryDirectory(prefix="vqtune-quantizers-") as scratch:
        datasets = [measure(name, args, Path(scratch)) for name in args.datasets]
    steps = SCHEMA_DEAD_CODE_STEPS if args.dead_code_steps is None else args.dead_code_steps
    record = records.new_record(section, "cpu", meter, model=MODEL, optim=OPTIM, prior=PRIOR,
                                codebook_size=CODEBOOK_SIZE, epochs=[args.epochs, args.prior_epochs],
                                dead_code_steps=steps, seeds=args.seeds,
                                variants=quantizer_sections(args.dead_code_steps), datasets=datasets)
    records.finish(args, record, {section: render})


def headline(r: dict) -> list[tuple[str, str, str, bool]]:
    """The rows of the targets at a glance: (figure, measured, target, met), one per dataset."""
    rows, steps = [], steps_of(r)
    restarts = {SCHEMA_DEAD_CODE_STEPS: "", 0: ", dead-code restarts off"}.get(steps, f", dead_code_steps {steps}")
    for d in r["datasets"]:
        t = d["target"]
        default = ", ".join(f"{run['active_share']:.1%}" for run in d["runs"] if run["variant"] == DEFAULT)
        meeting = ", ".join(label(v, steps) for v in t["meeting"]) or "none"
        rows.append((f"Quantizers at K of about 1000{restarts}, {d['dataset']}: alternatives with >= "
                     f"{ACTIVE_TARGET:.0%} of codes active and val MSE within {MSE_SLACK:.0%} of the default's",
                     f"{len(t['meeting'])} ({meeting}); default {default} active",
                     f">= {ALTERNATIVES_NEEDED}, default below {ACTIVE_TARGET:.0%}", t["met"]))
    return rows


def percent(x: float) -> str:
    return f"{x:+.1%}"


def render(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    lines = []
    for d in r["datasets"]:
        lines += [f"**{d['dataset']}**: {d['data']}; validation: {d['val_images']:,} images x {d['grid']} codes = "
                  f"{d['val_latents']:,} latent positions; {d['steps_per_epoch']} training steps per epoch.", "",
                  *runs_table(d, r), "", *target_table(d, r), "", restarts_line(d, r), "", *epochs_table(d, r), ""]
    m, p = r["model"], r["prior"]
    steps = steps_of(r)
    restarts = ("" if steps == SCHEMA_DEAD_CODE_STEPS else
                "; the VQ variants never re-seed a code (`dead_code_steps: 0`)" if steps == 0 else
                f"; the VQ variants re-seed a code unused for {steps} training steps (`dead_code_steps: {steps}`; "
                f"the schema's is {SCHEMA_DEAD_CODE_STEPS})")
    return lines + records.setting_lines(
        r,
        f"Stage 1: hidden {m['hidden']}, residual hidden {m['residual_hidden']}, {m['residual_blocks']} residual "
        f"blocks, {m['downsample']} downsamplings, D {m['embedding_dim']}, Adam lr {r['optim']['lr']:g}, batch "
        f"{r['optim']['batch_size']}, {r['epochs'][0]} epochs; quantizer sections: "
        + "; ".join(f"{v} `{q or 'the defaults'}`" for v, q in r["variants"].items())
        + f" (K {r['codebook_size']} for vq, 1000 for fsq){restarts}.",
        f"Prior (the same for all): channels {p['channels']}, {p['layers']} layers, Adam lr {p['lr']:g}, batch "
        f"{p['batch_size']}, {r['epochs'][1]} epochs; seeds {', '.join(map(str, r['seeds']))}; `fit` on {r['machine']['torch_threads']} "
        "torch thread(s).")


def runs_table(d: dict, record: dict) -> list[str]:
    base = {r["seed"]: r for r in d["runs"] if r["variant"] == DEFAULT}
    rows = []
    for r in d["runs"]:
        mse_change = r["val_recon_mse"] / base[r["seed"]]["val_recon_mse"] - 1
        rows.append([label(r["variant"], steps_of(record)), r["seed"],
                     f"{r['active_codes']:,} of {r['codebook_size']:,}",
                     f"**{r['active_share']:.1%}**", f"{r['val_perplexity']:,.0f}",
                     f"{r['val_recon_mse']:.5f}" + ("" if r["variant"] == DEFAULT else f" ({percent(mse_change)})"),
                     f"{r['bits_per_dim']:.3f}", f"{r['bits_per_dim_unigram']:.3f}",
                     f"{r['train_images_per_s']:,.0f}", f"{r['best_epoch']}", f"{r['fit_s']:,.0f}"])
    return records.table(["quantizer", "seed", "val_active_codes", "active, % of K", "val perplexity",
                          "val_recon_mse (against default)", "two-stage bits/dim (PixelCNN)",
                          "bits/dim, unigram prior", "train images/s", "stage-1 epoch used", "fit, s"], rows)


def target_table(d: dict, record: dict) -> list[str]:
    t = d["target"]
    steps = steps_of(record)
    base = [r for r in d["runs"] if r["variant"] == DEFAULT]
    default = ", ".join(f"{r['active_share']:.1%}" for r in base)
    rows = []
    for variant, check in t["alternatives"].items():
        reasons = []
        for c in check["seeds"]:
            run = next(r for r in d["runs"] if r["variant"] == variant and r["seed"] == c["seed"])
            parts = [] if c["active"] else [f"{run['active_share']:.1%} of its codes active, under "
                                            f"{ACTIVE_TARGET:.0%}" + still_rising(run)]
            if not c["mse"]:
                parts.append(f"val_recon_mse {percent(c['mse_change'])} against the default, over "
                             f"{percent(MSE_SLACK)}")
            if not c["default_fewer"]:
                parts.append(f"the default itself keeps {ACTIVE_TARGET:.0%} or more active")
            if parts:
                reasons.append(f"seed {c['seed']}: " + "; ".join(parts))
        rows.append([label(variant, steps), records.verdict(check["met"]), "; ".join(reasons) or "-"])
    names = ", ".join(label(v, steps) for v in t["meeting"]) or "none"
    rows.append([f"target: >= {ALTERNATIVES_NEEDED} alternatives (default{restarts_note(steps)}: {default} "
                 "active)",
                 records.verdict(t["met"]), f"meeting it: {names}"])
    return records.table(["alternative", "target", "why not"], rows)


def still_rising(run: dict) -> str:
    """`` (still rising: +N codes over the last epoch)`` when the count grew in the last epoch."""
    series = run["active_by_epoch"]
    gain = series[-1] - series[-2] if len(series) > 1 else 0
    return f" (still rising at the last epoch: +{gain} codes)" if gain > 0 else ""


def restarts_line(d: dict, r: dict) -> str:
    """What the dead-code restarts of the VQ variants did, read from the per-epoch counts: the count before and
    after the first epoch in which a code can have gone unused for ``dead_code_steps`` steps, and FSQ's, which
    has no codebook to re-seed, from its first epoch to its last; with restarts off (``dead_code_steps: 0``), the VQ
    variants' count from their first epoch to their last too."""
    steps = steps_of(r)
    fsq = [run for run in d["runs"] if run["variant"] == "fsq"]
    parts = []
    if steps == 0:
        counts = "; ".join(f"{label(run['variant'], steps)} {run['active_by_epoch'][0]:,} -> "
                           f"{run['active_by_epoch'][-1]:,} (largest {max(run['active_by_epoch']):,})"
                           for run in d["runs"] if run["variant"] != "fsq")
        parts.append("No code of the VQ variants is ever re-seeded (`dead_code_steps: 0`): their active codes went "
                     f"from epoch 1 to the last: {counts}.")
    epoch = -(-steps // d["steps_per_epoch"])  # the epoch that holds training step `steps`
    vq = [run for run in d["runs"] if run["variant"] != "fsq" and len(run["active_by_epoch"]) >= epoch > 1]
    if steps and vq:
        counts = "; ".join(f"{label(run['variant'], steps)} {run['active_by_epoch'][epoch - 2]:,} -> "
                           f"{run['active_by_epoch'][epoch - 1]:,}" for run in vq)
        whose = ("the schema's `dead_code_steps`" if steps == SCHEMA_DEAD_CODE_STEPS else
                 f"`dead_code_steps: {steps}`; the schema's is {SCHEMA_DEAD_CODE_STEPS}")
        parts.append(f"The VQ variants re-seed a code unused for {steps} training steps ({whose}): the first "
                     f"restarts fall in epoch {epoch} ({d['steps_per_epoch']} steps per epoch), where their active "
                     f"codes went from epoch {epoch - 1} to {epoch}: {counts}.")
    for run in fsq:
        series = run["active_by_epoch"]
        parts.append(f"FSQ, which has no codebook to re-seed, went from {series[0]:,} active codes after epoch 1 to "
                     f"{series[-1]:,} after epoch {len(series)} (seed {run['seed']}).")
    return " ".join(parts)


def epochs_table(d: dict, record: dict) -> list[str]:
    rows = [[label(r["variant"], steps_of(record)), r["seed"], ", ".join(f"{n:,}" for n in r["active_by_epoch"])]
            for r in d["runs"]]
    return records.table(["quantizer", "seed", "val_active_codes after each stage-1 epoch"], rows)


if __name__ == "__main__":
    main()
