"""Pruning savings and search quality on Fashion-MNIST, from one set of runs side by side.

1. The search of ``search_spaces/fashion-mnist.yaml`` runs as a user runs it (``run_study``, TPE, pruning on):
   its wall time is the budget.
2. The same trials (the parameters the first run chose, queued in that order) run again with both pruning
   rules off. Pruning savings: epochs trained, wall time and best value of the two.
3. The default model (``TrainConfig`` defaults: the Sonnet VQ-VAE, hidden 128, residual hidden 32, 2 residual
   blocks, D 64, K 512, beta 0.25, decay 0.99, lr 3e-4) trains on the same data, with the whole machine, for
   the budget: epoch after epoch while the next one still fits. Search quality: the best trial of the pruned
   search against it, on validation normalized MSE and perplexity.

    python benchmarks/fashion_mnist_search.py                        # measure, print a report and a JSON line
    python benchmarks/fashion_mnist_search.py --write BENCHMARKS.md  # also update both sections there
    python benchmarks/fashion_mnist_search.py --trials 4 --epochs 3  # a few minutes (make bench-quick)

Needs the Fashion-MNIST IDX files (`make fashion-mnist`).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console

from sections import LoadMeter, load_line, machine_line, write_section
from train_throughput import describe_machine, log
from vqtune.config import SearchSpace, TrainConfig, load_search_space
from vqtune.data import load_images
from vqtune.errors import VqtuneError
from vqtune.train import Reporter, fit_vqvae
from vqtune.tune._runner import _ray, run_study

SPACE_FILE = Path(__file__).resolve().parents[1] / "search_spaces" / "fashion-mnist.yaml"
TARGET_EPOCH_SAVING = 0.5     # >= 50% fewer epochs with pruning...
TARGET_BEST_WITHIN = 0.02     # ...and the best value within 2%
TARGET_NMSE_GAIN = 0.2        # the search's best: >= 20% lower normalized MSE than the default...
TARGET_USAGE = 0.5            # ...with a perplexity of at least half its codebook


def run_search(space: SearchSpace) -> dict:
    t0 = time.perf_counter()
    result = run_study(space, console=Console(file=io.StringIO(), width=200))
    seconds = time.perf_counter() - t0
    trials = sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value) if complete else None
    summary = {
        "study": space.study,
        "seconds": seconds,
        "trials": len(finished),
        "states": {s.name: sum(t.state == s for t in trials) for s in TrialState if any(t.state == s for t in trials)},
        "pruned_by": {k: sum(t.user_attrs.get("pruned_by") == k for t in trials)
                      for k in ("recon_loss", "perplexity")},
        "epochs_trained": sum(len(t.intermediate_values) for t in finished),
        "epochs_full": len(finished) * space.base.optim.epochs,
        "params": [t.params for t in finished],
        "best": None if best is None else {
            "number": best.number, "value": best.value, "params": best.params,
            "perplexity": best.user_attrs.get("perplexity"),
            "codebook_size": best.user_attrs["train_config"]["model"]["codebook_size"],
            "latent": latent(TrainConfig.model_validate(best.user_attrs["train_config"])),
            "val_recon_mse": best.user_attrs.get("val_recon_mse"),
            "epochs": len(best.intermediate_values),
        },
        # every trial's learning curve, to see what pruning cut and when
        "curves": {t.number: [t.intermediate_values[e] for e in sorted(t.intermediate_values)] for t in finished},
    }
    best_value = summary["best"] and summary["best"]["value"]
    log(f"{space.study}: {summary['trials']} trials in {seconds:.0f} s, {summary['epochs_trained']} of "
        f"{summary['epochs_full']} epochs, states {summary['states']}, best {best_value}")
    return summary


class UntilBudget(Reporter):
    """Stops after the epoch past which the next one would not fit in ``budget_s``."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.start = time.perf_counter()
        self.history: list[dict] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        elapsed = time.perf_counter() - self.start
        self.history.append({"epoch": epoch, "elapsed_s": elapsed, **{k: float(v) for k, v in metrics.items()}})
        log(f"default model, epoch {epoch}: val nMSE {metrics['val_nmse']:.4f}, perplexity "
            f"{metrics['val_perplexity']:.1f}, {elapsed:.0f}/{self.budget_s:.0f} s")
        per_epoch = elapsed / epoch
        return elapsed + per_epoch > self.budget_s


def latent(config: TrainConfig) -> dict:
    """The code grid of a config and the bits it spends per image (cells x log2 K): the rate of the model."""
    height, width = (side // 2 ** config.model.downsample for side in config.data.size)
    return {"grid": f"{height}x{width}", "bits": height * width * math.log2(config.model.codebook_size)}


def train_default(space: SearchSpace, budget_s: float, run_dir: Path) -> dict:
    """The TrainConfig defaults on the search's data, for the budget, with every core."""
    config = TrainConfig.model_validate({"data": space.base.data.model_dump(), "optim": {"epochs": 10_000},
                                         "device": "cpu", "run_dir": str(run_dir)})
    reporter = UntilBudget(budget_s)
    fit_vqvae(config, reporter)
    last = reporter.history[-1]
    m = config.model
    return {
        "setting": f"hidden {m.hidden}, residual hidden {m.residual_hidden}, {m.residual_blocks} residual blocks, "
                   f"D {m.embedding_dim}, K {m.codebook_size}, beta {config.quantizer.beta:g}, decay "
                   f"{config.quantizer.decay:g}, lr {config.optim.lr:g}, batch {config.optim.batch_size}",
        "codebook_size": m.codebook_size,
        "latent": latent(config),
        "epochs": int(last["epoch"]),
        "seconds": last["elapsed_s"],
        "val_nmse": last["val_nmse"],
        "val_recon_mse": last["val_recon_mse"],
        "perplexity": last["val_perplexity"],
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, help="n_trials (default: the file's)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the file's)")
    parser.add_argument("--max-images", type=int, help="Fashion-MNIST images kept, train and val (default: the file's)")
    parser.add_argument("--write", type=Path, metavar="PATH", help="update the two sections of PATH")
    args = parser.parse_args()

    meter = LoadMeter()
    with tempfile.TemporaryDirectory(prefix="vqtune-fashion-") as scratch:
        root = Path(scratch)
        overrides = [f"{key}={value}" for key, value in (("n_trials", args.trials), ("base.optim.epochs", args.epochs),
                                                          ("base.data.max_images", args.max_images)) if value]
        settings = {"storage": f"sqlite:///{root / 'bench.db'}", "trial_dir": str(root / "trials")}
        try:
            pruned_space = load_search_space(SPACE_FILE, overrides, {**settings, "study": "pruned"})
            data = load_images(pruned_space.base.data)
        except VqtuneError as exc:
            sys.exit(f"{exc}\n(make fashion-mnist installs the data)")
        log(f"{data.description}; search {SPACE_FILE.name}: {pruned_space.n_trials} trials of "
            f"{pruned_space.base.optim.epochs} epochs")
        t0 = time.perf_counter()
        _ray(None, verbose=False)
        ray_start = time.perf_counter() - t0

        pruned = run_search(pruned_space)
        unpruned_space = load_search_space(SPACE_FILE, [*overrides, "pruner.type=none", "perplexity.floor=0"],
                                           {**settings, "study": "unpruned"})
        study = optuna.create_study(study_name="unpruned", storage=unpruned_space.storage.url)
        for params in pruned["params"]:
            study.enqueue_trial(params)
        unpruned = run_search(unpruned_space)
        if unpruned["params"] != pruned["params"]:
            sys.exit("the unpruned run did not run the same trials")
        default = train_default(pruned_space, budget_s=pruned["seconds"], run_dir=root / "default")

    for run in (pruned, unpruned):
        del run["params"]
    record = {
        "device": "cpu", "space_file": "search_spaces/fashion-mnist.yaml", "overrides": overrides,
        "data": data.description, "n_trials": pruned_space.n_trials, "epochs": pruned_space.base.optim.epochs,
        "pruner": pruned_space.pruner.model_dump(mode="json"), "perplexity_rule": pruned_space.perplexity.model_dump(),
        "sampler": pruned_space.sampler.model_dump(mode="json"), "objective": pruned_space.objective.metric,
        "ray_start_s": ray_start, "pruned": pruned, "unpruned": unpruned, "default": default,
        **meter.record(),
        "others_include": "they include Ray's processes, and the trials' workers among them",
        "machine": describe_machine(torch.device("cpu")),
        "command": shlex.join(["python", *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    figures = verdicts(record)
    record["figures"] = figures
    log(json.dumps(figures, indent=1))
    if args.write:
        write_section(args.write, "pruning_savings", {**record, "benchmark": "pruning_savings"}, render_pruning)
        write_section(args.write, "search_quality", {**record, "benchmark": "search_quality"}, render_quality)
        log(f"updated the pruning_savings and search_quality sections of {args.write}")
    print(json.dumps(record))


def verdicts(r: dict) -> dict:
    on, off, default = r["pruned"], r["unpruned"], r["default"]
    saving = 1 - on["epochs_trained"] / off["epochs_trained"]
    best_gap = on["best"]["value"] / off["best"]["value"] - 1 if on["best"] and off["best"] else None
    best = on["best"]
    gain = 1 - best["value"] / default["val_nmse"] if best else None
    usage = best["perplexity"] / best["codebook_size"] if best and best["perplexity"] else None
    return {
        "epoch_saving": saving,
        "wall_saving": 1 - on["seconds"] / off["seconds"],
        "best_gap": best_gap,
        "pruning_met": saving >= TARGET_EPOCH_SAVING and best_gap is not None and best_gap <= TARGET_BEST_WITHIN,
        "nmse_gain": gain,
        "best_usage": usage,
        "default_usage": default["perplexity"] / default["codebook_size"],
        "quality_met": gain is not None and gain >= TARGET_NMSE_GAIN and usage is not None and usage >= TARGET_USAGE,
    }


def _params(params: dict) -> str:
    return ", ".join(f"{k.split('.')[-1]} {v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]} {v}"
                     for k, v in params.items())


def _setup(r: dict) -> str:
    pruner = r["pruner"]
    options = ", ".join(f"{k} {v}" for k, v in (pruner.get("options") or {}).items())
    rule = r["perplexity_rule"]
    return (f"`{r['space_file']}`{' with ' + ', '.join(r['overrides']) if r['overrides'] else ''}: {r['n_trials']} "
            f"trials of {r['epochs']} epochs, {r['sampler']['type']} sampler (seed {r['sampler']['seed']}), "
            f"objective {r['objective']}, two trials at a time with one CPU each; {r['data']}. Pruning: "
            f"{pruner['type']} ({options}) on the objective, and the perplexity rule (floor {rule['floor']} of K "
            f"after {rule['warmup_epochs']} epochs).")


def _footer(r: dict) -> list[str]:
    return ["", machine_line(r), load_line(r), f"Command: `{r['command']}`", ""]


def render_pruning(records: dict[str, dict]) -> str:
    r = records["cpu"]
    f, on, off = r["figures"], r["pruned"], r["unpruned"]
    met = "met" if f["pruning_met"] else "missed"
    lines = [
        "## Pruning savings (Fashion-MNIST)",
        "",
        f"{_setup(r)} The search runs once with pruning on; then the same trials (the parameters it chose, queued "
        "in the same order) run again with both rules off. Epochs trained count every epoch a trial ran.",
        "",
        "| pruning | trials | states | epochs trained | wall time, s | best val nMSE (trial) |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in (("on", on), ("off", off)):
        states = ", ".join(f"{n} {k.lower()}" for k, n in run["states"].items())
        best = run["best"]
        lines.append(f"| {name} | {run['trials']} | {states} | {run['epochs_trained']} of {run['epochs_full']} | "
                     f"{run['seconds']:.0f} | {best['value']:.4f} (#{best['number']}) |")
    gap = f["best_gap"]
    lines += [
        "",
        f"**Pruning trains {f['epoch_saving']:.0%} fewer epochs ({_less(f['wall_saving'])} wall time), and its "
        f"best value is {gap:+.1%} from the unpruned best (+ is worse). Target >= 50% fewer epochs with the best "
        f"within 2%: {met}.** Pruned by the objective rule: {on['pruned_by']['recon_loss']}; by the perplexity rule: "
        f"{on['pruned_by']['perplexity']}.",
        *_lost_best(on, off),
        *_few_epochs_saved(r, f),
        *_footer(r),
    ]
    return "\n".join(lines)


def _less(saving: float) -> str:
    return f"{saving:.0%} less" if saving >= 0 else f"{-saving:.0%} more"


def _lower(gain: float) -> str:
    return f"{gain:.0%} lower" if gain >= 0 else f"{-gain:.0%} higher"


def _few_epochs_saved(r: dict, f: dict) -> list[str]:
    """When pruning saved less than the target: which trials ran to the end, read from the curves."""
    if f["epoch_saving"] >= TARGET_EPOCH_SAVING:
        return []
    on, epochs = r["pruned"], r["epochs"]
    full = sorted(int(n) for n, curve in on["curves"].items() if len(curve) == epochs)
    return ["", f"{len(full)} of the {on['trials']} trials ran all {epochs} epochs (#{', #'.join(map(str, full))}): "
                f"{len(full) * epochs} of the {on['epochs_trained']} epochs trained. Successive halving lets a "
                "trial through a rung when it is among the best 1/reduction_factor of the trials that have reached "
                "that rung so far; while fewer than reduction_factor have, it lets through one that is the best so "
                "far, so the first trial at each rung always goes on and early ones often do. In "
                f"a search of {on['trials']} trials that start-up is a large share; with more trials (or a larger "
                "reduction factor, which cuts harder and risks the best) the share of epochs saved grows."]


def _lost_best(on: dict, off: dict) -> list[str]:
    """When pruning missed the best trial: where it cut it, read from the two runs' curves."""
    number = str(off["best"]["number"])
    cut, full = on["curves"].get(number), off["curves"].get(number)
    if not cut or not full or len(cut) == len(full):
        return []
    return ["", f"The unpruned run's best, trial #{number}, was pruned after epoch {len(cut)} in the pruned run, with "
                f"{cut[-1]:.4f} there; run to the end it reached {full[-1]:.4f}. A later first cut (pruner "
                "min_resource) or a gentler one (a smaller reduction factor) keeps such slow starters longer, "
                "for fewer epochs saved."]


def render_quality(records: dict[str, dict]) -> str:
    r = records["cpu"]
    f, best, default = r["figures"], r["pruned"]["best"], r["default"]
    met = "met" if f["quality_met"] else "missed"
    lines = [
        "## Search quality (Fashion-MNIST)",
        "",
        f"The best trial of the pruned search above ({_setup(r)}) against the default model ({default['setting']}: "
        f"the `TrainConfig` defaults) trained on the same data for the search's wall time, "
        f"{r['pruned']['seconds']:.0f} s, with all {default['torch_threads']} torch threads: epoch after epoch "
        "while the next one still fits. Validation figures after the last epoch of each.",
        "",
        "| model | epochs | val normalized MSE | perplexity (of K) | code grid, bits per image |",
        "|---|---|---|---|---|",
        f"| search's best, trial #{best['number']}: {_params(best['params'])} | {best['epochs']} | "
        f"{best['value']:.4f} | {best['perplexity']:.1f} of {best['codebook_size']} ({f['best_usage']:.0%}) | "
        f"{best['latent']['grid']}, {best['latent']['bits']:,.0f} |",
        f"| default, {default['seconds']:.0f} s | {default['epochs']} | {default['val_nmse']:.4f} | "
        f"{default['perplexity']:.1f} of {default['codebook_size']} ({f['default_usage']:.0%}) | "
        f"{default['latent']['grid']}, {default['latent']['bits']:,.0f} |",
        "",
        f"**The search's best has {_lower(f['nmse_gain'])} normalized MSE than the default, with a perplexity of "
        f"{f['best_usage']:.0%} of its K. Target >= 20% lower with perplexity >= 50% of K: {met}.** The last column "
        "is the rate: a finer code grid or a larger codebook spends more bits per image, and gives the prior of "
        "stage 2 more to model.",
        *_footer(r),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
