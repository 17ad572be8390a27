"""The whole two-stage model: a search by reconstruction error against a search by two-stage bits/dim, at equal CPU.

Per dataset (the bundled photos, Fashion-MNIST padded to 32x32), on the space and base of
``search_spaces/rate.yaml`` (latent grid, codebook size, learning rates; small models), same sampler and seed:

1. ``bits``: the file with 16 trials and without its constraint, each trial the VQ-VAE then a PixelCNN on its
   own codes, judged by ``val_bits_per_dim`` through both stages. Its CPU-seconds are the budget.
2. ``mse``: the same space with stage 1 only, judged by ``val_recon_mse``, with 1.5 times as many trials; the
   study is continued with more until it has used the budget.
3. ``pareto``: stage 1 only with the objectives and pruner of ``search_spaces/pareto.yaml`` (``val_recon_mse``
   against ``rate_bits``), to the same budget.
4. The picks of 1 and 2 (their best trials) are trained again with ``fit``, identically through both stages (the
   same epochs, prior and seed), and compared on the two-stage bits/dim and its parts, the time to draw and decode
   64 samples (``sample_images``), and their sample grids.

A search's CPU-seconds are those of the driver and every process under it (Ray's processes and the trials'
workers), sampled from /proc while it runs, so other work on the machine does not count; the machine's busy
CPU-seconds over the same time are recorded next to them.

    python benchmarks/whole_model.py                         # measure (minutes: see BENCHMARKS.md); record on stdout
    python benchmarks/whole_model.py --write BENCHMARKS.md   # also update its section and the sample grids
    python benchmarks/whole_model.py --trials 1 --epochs 1 --crops-per-image 6 --max-images 200   # bench-quick

Needs Linux (/proc) and the Fashion-MNIST IDX files (`make fashion-mnist`).
"""

from __future__ import annotations

import io
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

import records
from vqtune.config import PriorConfig, SearchSpace, TrainConfig, apply_overrides, read_yaml, validate
from vqtune.data import load_images
from vqtune.errors import VqtuneError
from vqtune.study import open_storage, trial_train_config
from vqtune.train import fit, sample_images
from vqtune.tune import run_study, start_ray

ROOT = Path(__file__).resolve().parents[1]
RATE_FILE = ROOT / "search_spaces" / "rate.yaml"
PARETO_FILE = ROOT / "search_spaces" / "pareto.yaml"
FIGURES = Path(__file__).resolve().parent / "figures"
DATASETS = {  # name -> overrides of rate.yaml's base.data
    "photos": [],
    "fashion-mnist": ["base.data.source=fashion-mnist", "base.data.resolution=32"],
}
TARGET_GAIN = 0.10       # the bits/dim search's pick: >= 10% lower two-stage bits/dim than the MSE search's
FIRST_ROUND = 1.5        # a search to the budget starts with 1.5 times the two-stage search's trials...
BUDGET_SHORT = 0.10      # ...and continues while it has used less than 90% of the budget...
MAX_TRIALS_FACTOR = 5    # ...and has fewer than 5 times the two-stage search's trials
RECENT = 4               # the finished trials whose durations estimate the next ones' CPU-seconds
KINDS = {"bits": "two-stage, val_bits_per_dim", "mse": "stage 1, val_recon_mse",
         "pareto": "stage 1, val_recon_mse and rate_bits"}


class TreeCPU:
    """CPU-seconds of this process and every process under it, over a ``with`` block.

    Ray's head processes and the trials' workers all descend from the driver of a local session, but a worker's
    time never reaches its parent's cumulative child times when it exits, so the tree is sampled every
    ``interval`` seconds from /proc and each process counts up to its last sample."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.start, self.last = interval, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeCPU":
        self.start = self._sample()
        self.last = dict(self.start)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.last.update(self._sample())

    @property
    def seconds(self) -> float:
        return sum(ticks - self.start.get(pid, 0) for pid, ticks in self.last.items()) / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.last.update(self._sample())

    @staticmethod
    def _sample() -> dict[int, int]:
        """pid -> utime + stime + cutime + cstime, in clock ticks, of this process's tree."""
        parents, ticks = {}, {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:  # ended meanwhile
                    continue
                pid = int(entry.name)
                parents[pid], ticks[pid] = int(fields[1]), sum(int(v) for v in fields[11:15])
        tree, frontier = set(), {os.getpid()}
        while frontier:
            tree |= frontier
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
        return {pid: ticks[pid] for pid in tree if pid in ticks}


def searches(dataset: str, overrides: list[str], root: Path) -> dict[str, SearchSpace]:
    """The three searches of one dataset, all on rate.yaml's space and base with ``overrides``: ``bits`` is the
    file without its constraint (a bound on the wall time of sampling, which the machine's load moves, would
    narrow its space alone); ``mse`` and ``pareto`` drop its prior and the prior's parameters, judged by
    val_recon_mse, or by pareto.yaml's objectives and pruner."""
    rate = {**apply_overrides(read_yaml(RATE_FILE), [*DATASETS[dataset], *overrides], SearchSpace), "constraints": []}
    pareto = read_yaml(PARETO_FILE)
    stage1 = {**{k: v for k, v in rate.items() if k != "objective"},
              "base": {k: v for k, v in rate["base"].items() if k != "prior"},
              "space": {k: v for k, v in rate["space"].items() if not k.startswith("prior.")}}
    kinds = {"bits": rate,
             "mse": {**stage1, "objective": {"metric": "val_recon_mse", "direction": "minimize"}},
             "pareto": {**stage1, "objectives": pareto["objectives"], "pruner": pareto["pruner"]}}
    return {kind: validate(SearchSpace, {**data, "study": f"{dataset}-{kind}", "storage": f"sqlite:///{root}/bench.db",
                                         "trial_dir": str(root / "trials")}, f"{RATE_FILE.name}, {kind} search")
            for kind, data in kinds.items()}


def run_search(space: SearchSpace, budget: float | None = None) -> dict:
    """Run ``space``; with a ``budget`` of CPU-seconds, from FIRST_ROUND times its trials, and then continue its
    study with more trials (as many as the CPU-seconds per trial so far say) until it has used most of the budget."""
    cpu = busy = wall = driver = 0.0
    n_trials, rounds = math.ceil(FIRST_ROUND * space.n_trials) if budget else space.n_trials, 0
    while True:
        busy0, driver0, t0 = records.busy_seconds(), records.own_cpu_seconds(), time.perf_counter()
        with TreeCPU() as tree:
            result = run_study(space.model_copy(update={"n_trials": n_trials}),
                               console=Console(file=io.StringIO(), width=200))
        cpu, busy, wall = cpu + tree.seconds, busy + records.busy_seconds() - busy0, wall + time.perf_counter() - t0
        driver += records.own_cpu_seconds() - driver0
        rounds += 1
        trials = result.study.get_trials(deepcopy=False)
        if not result.pareto:
            sys.exit(f"{space.study}: no complete trial; give the searches more trials or epochs")
        done = sorted((t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
                      key=lambda t: t.datetime_complete)
        records.log(f"{space.study}: {len(done)} trials, {cpu:.0f} CPU-s"
                    + (f" of a budget of {budget:.0f}" if budget else "") + f", {wall:.0f} s")
        if (budget is None or cpu >= (1 - BUDGET_SHORT) * budget
                or n_trials >= MAX_TRIALS_FACTOR * space.n_trials):
            break
        # A trial costs in proportion to its duration; the sampler's latest trials (finer grids, larger codebooks
        # as it homes in) say what the next ones will cost better than the average does.
        seconds = [t.duration.total_seconds() for t in done]
        per_trial = cpu / sum(seconds) * statistics.mean(seconds[-RECENT:])
        n_trials = min(len(done) + max(1, math.floor((budget - cpu) / per_trial)), MAX_TRIALS_FACTOR * space.n_trials)
    metrics = [o.metric for o in space.objectives] if space.is_multi_objective else [space.objective.metric]
    return {"study": space.study, "objectives": metrics, "n_trials": n_trials, "rounds": rounds,
            "cpu_s": cpu, "driver_cpu_s": driver, "machine_busy_s": busy, "wall_s": wall,
            "states": {s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))},
            "best": [t.number for t in result.pareto],
            "trials": [trial_row(t) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]}


def best_trial(run: dict) -> dict:
    """The row of a single-objective search's best trial."""
    return next(t for t in run["trials"] if t["number"] == run["best"][0])


def trial_row(t: FrozenTrial) -> dict:
    config = TrainConfig.model_validate(t.user_attrs["train_config"])
    height, width = (side >> config.model.downsample for side in config.data.size)
    return {"number": t.number, "state": t.state.name, "params": t.params, "values": t.values,
            "grid": f"{height}x{width}",
            **{k: t.user_attrs.get(k) for k in ("val_recon_mse", "rate_bits", "val_bits_per_dim", "epochs")}}


def train_pick(space: SearchSpace, number: int, prior: PriorConfig, run_dir: Path, figure: Path) -> dict:
    """Trial ``number`` of ``space``'s study trained again through both stages with ``prior``; its final metrics,
    the seconds of 64 decoded samples, and the sample grid saved to ``figure``."""
    study = optuna.load_study(study_name=space.study, storage=open_storage(space.storage))
    config, trial = trial_train_config(study, number)
    config = TrainConfig.model_validate({**config.model_dump(mode="json"), "prior": prior.model_dump(mode="json"),
                                         "device": "cpu", "run_dir": str(run_dir)})
    t0 = time.perf_counter()
    result = fit(config)
    fit_s = time.perf_counter() - t0
    final = result.final  # stage 1's figures of the checkpoint stage 2 encoded, stage 2's of its last epoch
    # On one thread, as in a search trial: that thread's CPU-seconds are the work whatever else runs on the machine
    # (two threads under contention spin and multiply theirs; Ray's threads in this process have their own)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0, cpu0 = time.perf_counter(), time.thread_time()
        grid = sample_images(result.run_dir, n=64, device="cpu")
        sample_s, sample_cpu_s = time.perf_counter() - t0, time.thread_time() - cpu0
    finally:
        torch.set_num_threads(threads)
    figure.parent.mkdir(parents=True, exist_ok=True)
    grid.save(figure)
    height, width = (side >> config.model.downsample for side in config.data.size)
    pick = {"number": number, "params": trial.params, "grid": f"{height}x{width}", "codebook_size":
            config.model.codebook_size, "epochs": [config.optim.epochs, config.prior.epochs], "fit_s": fit_s,
            "sample_s": sample_s, "sample_cpu_s": sample_cpu_s, "figure": str(figure.relative_to(ROOT))
            if figure.is_relative_to(ROOT) else str(figure)}
    pick.update({k: final[k] for k in ("val_recon_mse", "rate_bits", "val_code_bits", "val_perplexity", "vqvae_epoch",
                                        "val_bits_per_dim", "val_distortion_bits_per_dim", "val_bits_per_dim_unigram",
                                        "val_bits_per_dim_uniform", "val_nll")})
    pick["code_bits_per_dim"] = pick["val_bits_per_dim"] - pick["val_distortion_bits_per_dim"]
    records.log(f"{space.study} pick #{number}: {pick['grid']}, K {pick['codebook_size']}, "
                f"{pick['val_bits_per_dim']:.3f} bits/dim (code {pick['code_bits_per_dim']:.3f}), "
                f"64 samples in {pick['sample_cpu_s']:.2f} CPU-s ({pick['sample_s']:.2f} s)")
    return pick


def common_prior(space: SearchSpace) -> PriorConfig:
    """The two-stage base's prior with the geometric middle of its searched learning rate: the same for both picks."""
    lr = space.space["prior.lr"]
    return space.base.prior.model_copy(update={"lr": math.sqrt(lr.low * lr.high)})


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and a != b


def pareto_figures(pareto: dict, mse: dict, bits: dict) -> dict:
    """The Pareto search's front against the complete trials of the MSE search, on (val_recon_mse, rate_bits), and
    where the two picks lie against it (the bits/dim pick by its stage-1 figures)."""
    front = [t for t in pareto["trials"] if t["number"] in pareto["best"]]
    points = {t["number"]: (t["val_recon_mse"], t["rate_bits"]) for t in front}
    complete = [t for t in mse["trials"] if t["state"] == "COMPLETE"]
    mse_points = [(t["val_recon_mse"], t["rate_bits"]) for t in complete]

    def position(run: dict) -> dict:
        trial = best_trial(run)
        point = (trial["val_recon_mse"], trial["rate_bits"])
        return {"number": trial["number"], "val_recon_mse": point[0], "rate_bits": point[1],
                "dominated_by": [n for n, f in points.items() if dominates(f, point)],
                "front_at_rate": min((f[0] for f in points.values() if f[1] <= point[1]), default=None)}

    return {"front": sorted(front, key=lambda t: t["rate_bits"]),
            "mse_complete": len(complete),
            "mse_dominated": sum(any(dominates(f, p) for f in points.values()) for p in mse_points),
            "front_dominated": sum(any(dominates(p, f) for p in mse_points) for f in points.values()),
            "picks": {"mse": position(mse), "bits": position(bits)}}


def measure(dataset: str, overrides: list[str], root: Path, figures: Path) -> dict:
    spaces = searches(dataset, overrides, root)
    bits_space = spaces["bits"]
    try:
        data = load_images(bits_space.base.data)
    except VqtuneError as exc:
        sys.exit(f"{exc}\n(make fashion-mnist installs the data)")
    records.log(f"{dataset}: {data.description}")
    runs = {"bits": run_search(bits_space)}
    for kind in ("mse", "pareto"):
        runs[kind] = run_search(spaces[kind], budget=runs["bits"]["cpu_s"])
    prior = common_prior(bits_space)
    picks = {kind: train_pick(spaces[kind], runs[kind]["best"][0], prior, root / "picks" / dataset / kind,
                              figures / f"whole_model_{dataset}_{kind}.png") for kind in ("mse", "bits")}
    gain = 1 - picks["bits"]["val_bits_per_dim"] / picks["mse"]["val_bits_per_dim"]
    base = bits_space.base
    return {"dataset": dataset, "data": data.description, "searches": runs, "picks": picks,
            "prior": prior.model_dump(mode="json", exclude={"vqvae_checkpoint"}),
            "model": base.model.model_dump(mode="json"), "epochs": [base.optim.epochs, base.prior.epochs],
            "two_stage_trials": bits_space.n_trials, "max_concurrent": bits_space.max_concurrent,
            "trial_cpus": bits_space.resources.cpu, "sampler": bits_space.sampler.model_dump(mode="json"),
            "pruners": {kind: spaces[kind].pruner.model_dump(mode="json") for kind in spaces},
            "gain": gain, "met": gain >= TARGET_GAIN,
            "pareto": pareto_figures(runs["pareto"], runs["mse"], runs["bits"])}


def main() -> None:
    parser = records.parser(__doc__)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--trials", type=int, default=16, help="trials of the two-stage search (default: 16, twice "
                                                                "rate.yaml's)")
    parser.add_argument("--epochs", type=int, help="epochs of each stage (default: rate.yaml's)")
    parser.add_argument("--crops-per-image", type=int, help="photos: random crops per photo (default: rate.yaml's)")
    parser.add_argument("--max-images", type=int, default=1000, help="Fashion-MNIST images kept, train and val")
    args = records.parse(parser, RENDERS)

    overrides = [f"{key}={value}" for key, value in (
        ("n_trials", args.trials), ("base.optim.epochs", args.epochs), ("base.prior.epochs", args.epochs),
        ("base.data.crops_per_image", args.crops_per_image)) if value]
    meter = records.LoadMeter()
    with tempfile.TemporaryDirectory(prefix="vqtune-whole-") as scratch:
        root = Path(scratch)
        t0 = time.perf_counter()
        start_ray(None, verbose=False)
        ray_start = time.perf_counter() - t0
        # the committed sample grids change only with --write
        figures = FIGURES if args.write else root / "figures"
        datasets = [measure(name, overrides + (["base.data.max_images=" + str(args.max_images)]
                                               if name == "fashion-mnist" else []), root, figures)
                    for name in args.datasets]
    record = records.new_record("whole_model", "cpu", meter, space_file="search_spaces/rate.yaml",
                                overrides=overrides, ray_start_s=ray_start, datasets=datasets)
    # Ray's processes and the trials' workers are not this process: count what of "other processes" was theirs
    ray = sum(run["cpu_s"] - run["driver_cpu_s"] for d in datasets for run in d["searches"].values())
    if record["other_processes_cpu_seconds"] is not None:
        record["others_include"] = (f"{ray:,.0f} of them were the searches' Ray processes and trial workers, the other "
                                    f"{max(record['other_processes_cpu_seconds'] - ray, 0):,.0f} other work")
    records.finish(args, record, RENDERS)


def short(params: dict) -> str:
    names = {"model.codebook_size": "K", "model.downsample": "downsample", "optim.lr": "lr", "prior.lr": "prior lr"}
    return ", ".join(f"{names.get(k, k)} {v:.2g}" if isinstance(v, float) else f"{names.get(k, k)} {v}"
                     for k, v in params.items())


def render(recs: dict[str, dict]) -> list[str]:
    r = recs["cpu"]
    lines = []
    for d in r["datasets"]:
        lines += [f"**{d['dataset']}**: {d['data']}.", "", *search_table(d), "", *picks_table(d), "",
                  *verdict_table(d), "", *samples_table(d), "", *pareto_table(d), ""]
    d = r["datasets"][0]
    prior, model = d["prior"], d["model"]
    return lines + records.setting_lines(
        r,
        f"Searches: the space and base of `{r['space_file']}`"
        f"{' with ' + ', '.join(r['overrides']) if r['overrides'] else ''} (model hidden {model['hidden']}, residual "
        f"hidden {model['residual_hidden']}, residual blocks {model['residual_blocks']}, D {model['embedding_dim']}; "
        f"epochs: {d['epochs'][0]} of stage 1, {d['epochs'][1]} of the prior), {d['sampler']['type']} sampler with "
        f"seed {d['sampler']['seed']}, {d['max_concurrent']} trials at a time with {d['trial_cpus']:g} CPU each; "
        f"pruners: two-stage {d['pruners']['bits']['type']} (vqtune's rule of bounds: stage-1 epochs as intervals "
        f"from the distortion term to the unigram bound, each stage epoch against the same), MSE "
        f"{d['pruners']['mse']['type']} (Optuna's), Pareto {d['pruners']['pareto']['type']} (pareto.yaml's, "
        "constrained domination); no constraints (rate.yaml's sample_seconds <= 60 left out).",
        f"Picks trained again with `fit` through both stages on 2 threads, seed 0, with one prior for both: channels "
        f"{prior['channels']}, {prior['layers']} layers, lr {prior['lr']:.2g} (the geometric middle of the searched "
        f"prior.lr), {prior['epochs']} epochs; 64 samples: one `sample_images(run_dir, n=64)` call on one torch "
        "thread (checkpoints loaded, codes drawn, decoded), its CPU-seconds and wall time.",
        f"Ray started in {r['ray_start_s']:.1f} s.")


def search_table(d: dict) -> list[str]:
    rows = []
    for kind, run in d["searches"].items():
        states = ", ".join(f"{n} {k.lower()}" for k, n in run["states"].items())
        best = (f"front of {len(run['best'])}: #{', #'.join(map(str, run['best']))}" if kind == "pareto"
                else f"#{run['best'][0]}: {short(best_trial(run)['params'])}")
        rows.append([KINDS[kind], f"{run['n_trials']} ({states}), {run['rounds']} run(s)", grids(run),
                     f"{run['cpu_s']:,.0f}", f"{run['cpu_s'] / d['searches']['bits']['cpu_s']:.2f}",
                     f"{run['machine_busy_s']:,.0f}", f"{run['wall_s']:,.0f}", best])
    return records.table(["search", "trials (states)", "code grids: complete / pruned trials",
                          "CPU-s, search's processes", "against two-stage", "CPU-s, whole machine", "wall, s", "pick"],
                         rows)


def grids(run: dict) -> str:
    """``16x16 3/0, 8x8 2/1``: trials per code grid, finest first."""
    counts: dict[str, list[int]] = {}
    for t in run["trials"]:
        counts.setdefault(t["grid"], [0, 0])[t["state"] == "PRUNED"] += 1
    order = sorted(counts, key=lambda grid: -int(grid.split("x")[0]))
    return ", ".join(f"{grid} {counts[grid][0]}/{counts[grid][1]}" for grid in order)


def picks_table(d: dict) -> list[str]:
    rows = []
    for kind, name in (("mse", "MSE search's"), ("bits", "bits/dim search's")):
        p = d["picks"][kind]
        rows.append([f"{name}, #{p['number']}", f"{p['grid']}, K {p['codebook_size']}",
                     f"**{p['val_bits_per_dim']:.3f}**", f"{p['code_bits_per_dim']:.3f}",
                     f"{p['val_distortion_bits_per_dim']:.3f}",
                     f"{p['val_bits_per_dim_unigram']:.3f} / {p['val_bits_per_dim_uniform']:.3f}",
                     f"{p['rate_bits']:,.0f}", f"{p['val_recon_mse']:.5f}",
                     f"{p['sample_cpu_s']:.2f} ({p['sample_s']:.2f})"])
    return records.table(["pick, trained again", "code grid", "two-stage bits/dim", "code part", "decoder part",
                          "with unigram / uniform prior", "rate_bits", "val_recon_mse", "64 samples, CPU-s (wall s)"],
                         rows)


def verdict_table(d: dict) -> list[str]:
    mse, bits = d["picks"]["mse"], d["picks"]["bits"]
    gain = f"{d['gain']:.1%} lower" if d["gain"] >= 0 else f"{-d['gain']:.1%} higher"
    rows = [[f"two-stage bits/dim, bits/dim pick against MSE pick (target: {TARGET_GAIN:.0%} lower or more)", gain],
            ["target", records.verdict(d["met"])],
            ["sampling time of 64 samples, bits/dim pick against MSE pick",
             f"{bits['sample_cpu_s'] / mse['sample_cpu_s']:.2g}x the CPU-seconds, "
             f"{bits['sample_s'] / mse['sample_s']:.2g}x the wall time"]]
    if not d["met"] and same_model(mse, bits):
        rows.append(["why", "both searches picked the same stage-1 parameters: the two picks are one model"])
    elif not d["met"]:
        parts = [f"{name}: decoder {p['val_distortion_bits_per_dim']:.3f} + code {p['code_bits_per_dim']:.3f} "
                 f"({p['val_distortion_bits_per_dim'] / p['val_bits_per_dim']:.0%} decoder)"
                 for name, p in (("MSE pick", mse), ("bits/dim pick", bits))]
        rows.append(["why: the parts of the bound, bits/dim", "; ".join(parts)])
        same_grid = [t for t in d["searches"]["bits"]["trials"] if t["grid"] == mse["grid"]]
        pruned = [str(t["epochs"]) for t in same_grid if t["state"] == "PRUNED"]
        rows.append([f"why: the MSE pick's {mse['grid']} grid in the two-stage search",
                     f"{len(same_grid)} trials: {len(same_grid) - len(pruned)} complete, {len(pruned)} pruned"
                     + (f" (after epochs {', '.join(pruned)})" if pruned else "")])
    return records.table(["figure", "value"], rows)


def same_model(a: dict, b: dict) -> bool:
    """The same stage-1 parameters: the picks train the same model."""
    return {k: v for k, v in a["params"].items() if not k.startswith("prior.")} == \
        {k: v for k, v in b["params"].items() if not k.startswith("prior.")}


def samples_table(d: dict) -> list[str]:
    cells = [f"![64 samples of the {name} pick, {d['dataset']}]({d['picks'][kind]['figure']})"
             for kind, name in (("mse", "MSE search's"), ("bits", "bits/dim search's"))]
    return records.table([f"MSE search's pick, #{d['picks']['mse']['number']}",
                          f"bits/dim search's pick, #{d['picks']['bits']['number']}"], [cells])


def pareto_table(d: dict) -> list[str]:
    p = d["pareto"]
    rows = [[f"#{t['number']}", short(t["params"]), f"{t['val_recon_mse']:.5f}", f"{t['rate_bits']:,.0f}",
             f"{t['val_bits_per_dim']:.3f}"] for t in p["front"]]
    figures = [["MSE search's complete trials dominated by the Pareto front",
                f"{p['mse_dominated']} of {p['mse_complete']}"],
               ["front trials dominated by an MSE search trial", f"{p['front_dominated']} of {len(p['front'])}"]]
    for kind, name in (("mse", "MSE search's pick"), ("bits", "bits/dim search's pick, its stage 1")):
        pick = p["picks"][kind]
        where = "not dominated by the front"
        if pick["dominated_by"]:
            where = (f"dominated by #{', #'.join(map(str, pick['dominated_by']))} (the front's lowest val_recon_mse "
                     f"at its rate or less: {pick['front_at_rate']:.5f})")
        figures.append([f"{name}, #{pick['number']}: val_recon_mse {pick['val_recon_mse']:.5f}, rate_bits "
                        f"{pick['rate_bits']:,.0f}", where])
    return [*records.table(["Pareto front", "params", "val_recon_mse", "rate_bits",
                            "val_bits_per_dim, stage 1 (unigram prior)"], rows), "",
            *records.table(["figure", "value"], figures)]


RENDERS = {"whole_model": render}


if __name__ == "__main__":
    main()
