"""Pruning savings and search quality on Fashion-MNIST, from one set of runs side by side.

1. The search of ``search_spaces/fashion-mnist.yaml`` runs as a user runs it (``run_study``, pruning on); its
   wall time is the budget.
2. The same trials (the parameters the first run chose, queued in that order) run again with both pruning
   rules off: epochs trained, wall time and best value of the two.
3. The default model (``TrainConfig`` defaults) trains with ``fit`` on the same data, with the whole machine,
   for the budget: the best trial of the pruned search against it, on validation normalized MSE and perplexity.

    python benchmarks/fashion_mnist_search.py                        # measure; record on stdout
    python benchmarks/fashion_mnist_search.py --write BENCHMARKS.md  # also update both sections there
    python benchmarks/fashion_mnist_search.py --trials 4 --epochs 3  # a few minutes (make bench-quick)

Needs the Fashion-MNIST IDX files (`make fashion-mnist`).
"""

from __future__ import annotations

import io
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console

import records
from vqtune.config import SearchSpace, TrainConfig, load_search_space
from vqtune.data import load_images
from vqtune.errors import VqtuneError
from vqtune.train import fit
from vqtune.tune import run_study, start_ray

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
        "pruned_by": {k: sum(t.user_attrs.get("pruned_by") == k for t in trials) for k in ("pruner", "perplexity")},
        "epochs_trained": sum(len(t.intermediate_values) for t in finished),
        "epochs_full": len(finished) * space.base.optim.epochs,
        "params": [t.params for t in finished],
        "best": None if best is None else {
            "number": best.number, "value": best.value, "params": best.params,
            "perplexity": best.user_attrs.get("val_perplexity"),
            "codebook_size": best.user_attrs["train_config"]["model"]["codebook_size"],
            "latent": latent(TrainConfig.model_validate(best.user_attrs["train_config"])),
            "val_recon_mse": best.user_attrs.get("val_recon_mse"),
            "epochs": len(best.intermediate_values),
        },
        # every trial's learning curve, to see what pruning cut and when
        "curves": {t.number: [t.intermediate_values[e] for e in sorted(t.intermediate_values)] for t in finished},
    }
    best_value = summary["best"] and summary["best"]["value"]
    records.log(f"{space.study}: {summary['trials']} trials in {seconds:.0f} s, {summary['epochs_trained']} of "
                f"{summary['epochs_full']} epochs, states {summary['states']}, best {best_value}")
    return summary


class UntilBudget(records.Collector):
    """Stops after the epoch past which the next one would not fit in ``budget_s`` from now."""

    def __init__(self, budget_s: float) -> None:
        super().__init__()
        self.budget_s, self.start = budget_s, time.perf_counter()

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        super().report(epoch, metrics)
        elapsed = self.epochs[-1]["elapsed_s"] = time.perf_counter() - self.start
        records.log(f"default model, epoch {epoch}: val nMSE {metrics['val_nmse']:.4f}, {elapsed:.0f} s")
        return elapsed * (epoch + 1) / epoch > self.budget_s


def latent(config: TrainConfig) -> dict:
    """The code grid of a config and the bits it spends per image (cells x log2 K): the rate of the model."""
    height, width = (side // 2 ** config.model.downsample for side in config.data.size)
    return {"grid": f"{height}x{width}", "bits": height * width * math.log2(config.model.codebook_size)}


def train_default(space: SearchSpace, budget_s: float, run_dir: Path) -> dict:
    """The TrainConfig defaults on the search's data, for the budget, with every core."""
    config = TrainConfig.model_validate({"data": space.base.data.model_dump(), "optim": {"epochs": 10_000},
                                         "device": "cpu", "run_dir": str(run_dir)})
    reporter = UntilBudget(budget_s)
    fit(config, reporter)
    last, m, q = reporter.epochs[-1], config.model, config.quantizer
    return {"setting": f"hidden {m.hidden}, residual hidden {m.residual_hidden}, {m.residual_blocks} residual blocks, "
                       f"D {m.embedding_dim}, K {m.codebook_size}, beta {q.beta:g}, decay {q.decay:g}, lr "
                       f"{config.optim.lr:g}, batch {config.optim.batch_size}",
            "codebook_size": m.codebook_size, "latent": latent(config), "epochs": int(last["epoch"]),
            "seconds": last["elapsed_s"], "val_nmse": last["val_nmse"], "val_recon_mse": last["val_recon_mse"],
            "perplexity": last["val_perplexity"], "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = records.parser(__doc__)
    parser.add_argument("--trials", type=int, help="n_trials (default: the file's)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the file's)")
    parser.add_argument("--max-images", type=int, help="Fashion-MNIST images kept, train and val (default: the file's)")
    args = records.parse(parser, RENDERS)

    meter = records.LoadMeter()
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
        records.log(f"{data.description}; search {SPACE_FILE.name}: {pruned_space.n_trials} trials of "
                    f"{pruned_space.base.optim.epochs} epochs")
        t0 = time.perf_counter()
        start_ray(None, verbose=False)
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
    record = records.new_record(
        "fashion_mnist_search", "cpu", meter, space_file="search_spaces/fashion-mnist.yaml", overrides=overrides,
        data=data.description, n_trials=pruned_space.n_trials, epochs=pruned_space.base.optim.epochs,
        pruner=pruned_space.pruner.model_dump(mode="json"), perplexity_rule=pruned_space.perplexity.model_dump(),
        sampler=pruned_space.sampler.model_dump(mode="json"), objective=pruned_space.objective.metric,
        ray_start_s=ray_start, pruned=pruned, unpruned=unpruned, default=default,
        others_include="they include Ray's processes, and the trials' workers among them")
    record["figures"] = verdicts(record)
    records.finish(args, record, RENDERS)


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


def search_line(r: dict) -> str:
    pruner, rule = r["pruner"], r["perplexity_rule"]
    options = ", ".join(f"{k} {v}" for k, v in (pruner.get("options") or {}).items())
    return (f"Search: `{r['space_file']}`{' with ' + ', '.join(r['overrides']) if r['overrides'] else ''}: "
            f"{r['n_trials']} trials of {r['epochs']} epochs, {r['sampler']['type']} sampler (seed "
            f"{r['sampler']['seed']}), objective {r['objective']}, two trials at a time with one CPU each; "
            f"{r['data']}. Pruning: {pruner['type']} ({options}) on the objective, and the perplexity rule "
            f"(floor {rule['floor']} of K after {rule['warmup_epochs']} epochs).")


def render_pruning(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    rows = []
    for name, run in (("on", r["pruned"]), ("off", r["unpruned"])):
        states = ", ".join(f"{n} {k.lower()}" for k, n in run["states"].items())
        rows.append([name, run["trials"], states, f"{run['epochs_trained']} of {run['epochs_full']}",
                     f"{run['seconds']:.0f}", f"{run['best']['value']:.4f} (#{run['best']['number']})"])
    return [*records.table(["pruning", "trials", "states", "epochs trained", "wall time, s",
                            "best val nMSE (trial)"], rows),
            "", *pruning_figures(r), "", *records.setting_lines(r, search_line(r))]


def pruning_figures(r: dict) -> list[str]:
    f, on, off, epochs = r["figures"], r["pruned"], r["unpruned"], r["epochs"]
    rows = [
        [f"epochs trained, pruning on against off (target: {TARGET_EPOCH_SAVING:.0%} fewer or more)",
         f"{f['epoch_saving']:.0%} fewer"],
        ["wall time, pruning on against off", f"{f['wall_saving']:.0%} less" if f["wall_saving"] >= 0
         else f"{-f['wall_saving']:.0%} more"],
        [f"best value, pruning on against off, + is worse (target: within {TARGET_BEST_WITHIN:.0%})",
         f"{f['best_gap']:+.1%}"],
        ["both targets", records.verdict(f["pruning_met"])],
        ["trials pruned by the objective rule / by the perplexity rule",
         f"{on['pruned_by']['pruner']} / {on['pruned_by']['perplexity']}"],
    ]
    if f["epoch_saving"] < TARGET_EPOCH_SAVING:
        full = sorted(int(n) for n, curve in on["curves"].items() if len(curve) == epochs)
        rows.append([f"trials that ran all {epochs} epochs", f"{len(full)} of {on['trials']} "
                     f"(#{', #'.join(map(str, full))}): {len(full) * epochs} of the {on['epochs_trained']} epochs"])
    number = str(off["best"]["number"])
    cut, whole = on["curves"].get(number), off["curves"].get(number)
    if cut and whole and len(cut) < len(whole):
        rows.append([f"the unpruned run's best, #{number}, in the pruned run",
                     f"pruned after epoch {len(cut)} at {cut[-1]:.4f}; {whole[-1]:.4f} run to the end"])
    return records.table(["figure", "value"], rows)


def render_quality(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    f, best, default = r["figures"], r["pruned"]["best"], r["default"]
    params = ", ".join(f"{k.split('.')[-1]} {v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]} {v}"
                       for k, v in best["params"].items())
    return [*records.table(
        ["model", "epochs", "val normalized MSE", "perplexity (of K)", "code grid, bits per image"],
        [[f"search's best, trial #{best['number']}: {params}", best["epochs"], f"{best['value']:.4f}",
          f"{best['perplexity']:.1f} of {best['codebook_size']} ({f['best_usage']:.0%})",
          f"{best['latent']['grid']}, {best['latent']['bits']:,.0f}"],
         [f"default, {default['seconds']:.0f} s", default["epochs"], f"{default['val_nmse']:.4f}",
          f"{default['perplexity']:.1f} of {default['codebook_size']} ({f['default_usage']:.0%})",
          f"{default['latent']['grid']}, {default['latent']['bits']:,.0f}"]]),
        "", *quality_figures(r), "", *records.setting_lines(
            r, search_line(r), f"Default model: {default['setting']} (the `TrainConfig` defaults), trained for the "
                               f"search's wall time, {r['pruned']['seconds']:.0f} s, with all "
                               f"{default['torch_threads']} torch threads.")]


def quality_figures(r: dict) -> list[str]:
    f = r["figures"]
    gain = f"{f['nmse_gain']:.0%} lower" if f["nmse_gain"] >= 0 else f"{-f['nmse_gain']:.0%} higher"
    return records.table(["figure", "value"], [
        [f"val normalized MSE, search's best against the default (target: {TARGET_NMSE_GAIN:.0%} lower or more)",
         gain],
        [f"perplexity of the search's best, share of its K (target: {TARGET_USAGE:.0%} or more)",
         f"{f['best_usage']:.0%}"],
        ["both targets", records.verdict(f["quality_met"])]])


def headline(r: dict) -> list[tuple[str, str, str, bool]]:
    """The rows of the targets at a glance: (figure, measured, target, met)."""
    f = r["figures"]
    return [("Pruning: fewer epochs, best value against no pruning",
             f"{f['epoch_saving']:.0%} fewer, best {f['best_gap']:+.1%}",
             f">= {TARGET_EPOCH_SAVING:.0%} fewer, best within {TARGET_BEST_WITHIN:.0%}", f["pruning_met"]),
            ("Search's best vs the default model for the same time: nMSE, perplexity",
             f"{f['nmse_gain']:.0%} lower, {f['best_usage']:.0%} of K",
             f">= {TARGET_NMSE_GAIN:.0%} lower, >= {TARGET_USAGE:.0%} of K", f["quality_met"])]


RENDERS = {"pruning_savings": render_pruning, "search_quality": render_quality}


if __name__ == "__main__":
    main()
