"""What a search will do, before it runs: ``vqtune run --dry-run``, and the warnings every search prints first.

The dry run validates the search-space file, prints the resolved space, the trials, the resources, the study
(opened read-only) and a time estimate from a few timed training steps of the cheapest and the dearest
configuration of the space on this machine. It writes nothing (no database, study, run directory or cache) and
imports no Ray: it reads the data's file list or headers, never decodes a folder, and times the steps on
stand-in images of the right shape.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from sqlalchemy.engine import make_url

from vqtune.config import CategoricalParam, FloatParam, SearchSpace, TrainConfig
from vqtune.data import SplitSizes, split_sizes
from vqtune.errors import ConfigError, StorageError, VqtuneError
from vqtune.study import check_search, count_states, enabled, is_sqlite, mask, open_storage, pruning_warnings
from vqtune.tune._resources import trial_resources

# A validation split below either figure ranks trials on too little to trust: the objective of every trial is
# measured on these few photographs (files), so a search tunes to them. Fashion-MNIST's test split passes.
MIN_VAL_SOURCES = 5
MIN_VAL_IMAGES = 100
TIMED_STEPS = 3  # training steps timed per stage and configuration (after one untimed step)
SAMPLES = 64  # the prior samples a two-stage trial draws at its end (vqtune.tune._trial.SAMPLES)
# Parameters that change the work of a trial; the others (learning rates, beta, decay, ...) do not, and are
# held at one value when the cheapest and dearest configurations are looked for.
_COST_KEYS = ("data.", "model.", "optim.epochs", "optim.batch_size", "prior.channels", "prior.layers",
              "prior.kernel", "prior.epochs", "prior.batch_size", "quantizer.kind", "quantizer.levels",
              "quantizer.codebook_dim")
# Parameters that change how many training steps a trial's stage 1 takes, or whether its codes are restarted.
_STEP_KEYS = ("data.", "optim.epochs", "optim.batch_size", "quantizer.kind", "quantizer.dead_code_steps")
MAX_CORNERS = 512  # corner configurations ranked by cost; beyond, only the all-low and all-high ones


def search_warnings(space: SearchSpace) -> list[str]:
    """What would make a search less than it seems: a pruning rule that can never prune with these epochs and trials,
    a validation split too small to rank trials on, a trial too short for its dead codes ever to be restarted.
    One line each."""
    # the pruning rules' own warnings (vqtune.study.pruning): they can only prune before a trial's last epoch
    warnings = pruning_warnings(space, list(_corner_configs(space, cost_only=True)))
    try:
        sizes, where = data_sizes(space.base)
        restarts = _dead_code_warnings(space)
    except VqtuneError:  # data that cannot load: the search's own loading says why, in its words
        return warnings
    if sizes.val_sources < MIN_VAL_SOURCES or sizes.val_images < MIN_VAL_IMAGES:
        unit = sizes.unit
        share = f"data.val_fraction (now {where.val_fraction:g})"
        warnings.append(
            f"the validation split is tiny: {sizes.val_sources} {unit}{'s' * (sizes.val_sources != 1)} "
            f"({sizes.val_images} images) of {sizes.sources}, so every trial is judged on them (wanted: at least "
            f"{MIN_VAL_SOURCES} {unit}s and {MIN_VAL_IMAGES} images); add images, or raise {share} with "
            "--set base.data.val_fraction=...")
    return warnings + restarts


def _dead_code_warnings(space: SearchSpace) -> list[str]:
    """A codebook quantizer re-seeds a code left unused for ``quantizer.dead_code_steps`` training steps (the
    trainer's steps: train images // batch size per epoch, the ragged last batch dropped). A trial that trains
    fewer steps than that never re-seeds one, so a collapsing codebook stays collapsed: the shortest such corner
    of the space, if any, in one line."""
    worst = None  # (steps / dead_code_steps, config, steps per epoch, train images)
    sizes: dict[str, SplitSizes] = {}  # one count per data config: the corners share most of them
    for config in _corner_configs(space, vary=_step_key):
        quantizer = config.quantizer
        if "vqvae" not in config.stages or quantizer.kind != "vq" or quantizer.dead_code_steps <= 0:
            continue  # FSQ has no codebook, and restarts off are the user's choice
        key = config.data.model_dump_json()
        if key not in sizes:
            sizes[key] = split_sizes(config.data)
        images = sizes[key].train_images
        per_epoch = images // max(1, min(config.optim.batch_size, images))
        ratio = per_epoch * config.optim.epochs / quantizer.dead_code_steps
        if ratio < 1 and (worst is None or ratio < worst[0]):
            worst = (ratio, config, per_epoch, images)
    if worst is None:
        return []
    _, config, per_epoch, images = worst
    steps, dead, optim = per_epoch * config.optim.epochs, config.quantizer.dead_code_steps, config.optim
    active = enabled(space, {k: _get(config, k) for k in space.space})
    corner = ", ".join(f"{k}={v}" for k, v in active.items() if _step_key(k))
    return [f"quantizer.dead_code_steps {dead} is more than the {steps} training step{'s' * (steps != 1)} of a "
            f"trial{f' with {corner}' if corner else ''} (optim.epochs {optim.epochs} x {per_epoch} "
            f"step{'s' * (per_epoch != 1)} per epoch: {images} train images / optim.batch_size {optim.batch_size}), "
            "so no unused code is ever restarted and a collapsing codebook stays collapsed; lower "
            "quantizer.dead_code_steps, or give each trial more steps: more optim.epochs or data.crops_per_image "
            f"(now {config.data.crops_per_image}), or a smaller optim.batch_size"]


def data_sizes(base: TrainConfig):
    """The split sizes of the images a trial of ``base`` trains on (for stage 2 alone: the data of its
    checkpoint), and that data config."""
    data = _stage1_config(base).data
    return split_sizes(data), data


def _stage1_config(config: TrainConfig) -> TrainConfig:
    """``config`` itself, or for stage 2 alone the stage-1 checkpoint's config with ``config``'s prior: the
    images, latent grid and codebook the prior's codes come from."""
    if config.stages != ("prior",):
        return config
    from vqtune.train import fields_of, load_checkpoint  # torch: only for a search over a prior alone

    checkpoint = config.prior.vqvae_checkpoint
    if not Path(checkpoint).is_file():
        raise ConfigError(f"base.prior.vqvae_checkpoint: {checkpoint} is not a file; train a VQ-VAE first "
                          "(vqtune train) and give its best.pt")
    with fields_of(checkpoint):  # a checkpoint without a config, or with a config no longer valid, is damaged
        stage1 = TrainConfig.model_validate(load_checkpoint(checkpoint)["config"])
    return stage1.model_copy(update={"prior": config.prior, "seed": config.seed})


def _matches(key: str, keys: tuple[str, ...]) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in keys)


def _cost_key(key: str) -> bool:
    return _matches(key, _COST_KEYS)


def _step_key(key: str) -> bool:
    return _matches(key, _STEP_KEYS)


def _corner_configs(space: SearchSpace, cost_only: bool = False,
                    vary: Optional[Callable[[str], bool]] = None) -> Iterator[TrainConfig]:
    """Valid trial configs at the corners of the space (each range's ends, each choice); with ``cost_only``, the
    parameters that do not change a trial's work held at their first value (with ``vary``, those it says no to)."""
    vary = vary or (_cost_key if cost_only else lambda key: True)
    keys = list(space.space)
    grids = [space.space[k].corners() if vary(k) else space.space[k].corners()[:1] for k in keys]
    if math.prod(len(g) for g in grids) > MAX_CORNERS:
        combinations = [tuple(g[0] for g in grids), tuple(g[-1] for g in grids)]
    else:
        combinations = itertools.product(*grids)
    found = False
    for combination in combinations:
        values = dict(zip(keys, combination))
        on = enabled(space, values)
        active = {k: v for k, v in values.items() if k in on}  # in file order
        try:
            yield space.trial_config(active)
            found = True
        except ConfigError:
            continue
    if not found:
        yield space.base


class _Costed:
    """A trial config, the parameters that make it, and its cost in forward FLOPs over its whole run."""

    def __init__(self, space: SearchSpace, config: TrainConfig):
        from vqtune.train import forward_flops

        self.config = config
        active = enabled(space, {k: _get(config, k) for k in space.space})  # what the trial would be given
        self.params = {k: v for k, v in active.items() if _cost_key(k)}
        self.stage1 = _stage1_config(config)
        self.sizes = split_sizes(self.stage1.data)
        flops = forward_flops(self.stage1)
        items = 3 * self.sizes.train_images + self.sizes.val_images  # a training step is about 3 forward passes
        self.cost = sum(flops[stage] * items * (config.optim.epochs if stage == "vqvae" else config.prior.epochs)
                        for stage in config.stages)


def _get(config: TrainConfig, key: str) -> Any:
    """The value of the dotted ``key`` in ``config``; None for a key its sections do not have (an option of
    another quantizer kind: a parameter that a when-condition disables there)."""
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part, None)
    return value


def estimate_trial(config: TrainConfig, sizes: SplitSizes, stage1: TrainConfig,
                   device: str) -> tuple[float, list[str]]:
    """Seconds one trial of ``config`` takes without pruning, from timed steps, and how they add up."""
    from vqtune.train import time_prior_steps, time_vqvae_steps

    seconds, parts = 0.0, []
    vqvae = None
    if "vqvae" in config.stages or config.stages == ("prior",):
        vqvae = time_vqvae_steps(stage1.model_copy(update={"prior": None}), TIMED_STEPS, device)
    for stage in config.stages:
        if stage == "vqvae":
            timed, epochs, batch = vqvae, config.optim.epochs, config.optim.batch_size
        else:
            timed = time_prior_steps(stage1, TIMED_STEPS, device, samples=SAMPLES)
            epochs, batch = config.prior.epochs, config.prior.batch_size
        steps = sizes.train_images // min(batch, sizes.train_images)
        epoch = steps * timed.step_seconds + sizes.val_images * timed.eval_seconds_per_item
        seconds += epochs * epoch
        parts.append(f"{stage}: {steps} step{'s' * (steps != 1)} of {timed.step_seconds * 1000:.0f} ms + evaluation, {epoch:.1f} s "
                     f"per epoch x {epochs}")
        if stage == "prior":
            # the codes of every image, encoded once; at the end of a two-stage trial, SAMPLES grids drawn one
            # latent position at a time, at the timed cost of a position
            encode = (sizes.train_images + sizes.val_images) * vqvae.eval_seconds_per_item
            positions = sum(h * w for h, w in stage1.grids)
            sample = positions * timed.sample_seconds_per_position if "vqvae" in config.stages else 0.0
            seconds += encode + sample
            parts.append(f"encoding the codes {encode:.1f} s" + (f", {SAMPLES} samples {sample:.1f} s" if sample else ""))
    return seconds, parts


def _data_load_seconds(config: TrainConfig) -> tuple[float, str]:
    """How long a trial takes to load its images, timed when that writes nothing (not a folder whose decoded
    cache is still missing: the search decodes it once, before its first trial, and the trials read the cache)."""
    import time

    from vqtune.data import load_images

    data = config.data
    if not split_sizes(data).exact:  # only a folder is counted rather than decoded
        return 0.0, "not timed: the folder is decoded once, before the first trial, which a dry run does not do"
    start = time.perf_counter()
    load_images(data)
    seconds = time.perf_counter() - start
    return seconds, f"{_duration(seconds)}, timed"


def _worker_start_seconds() -> float:
    """Seconds a fresh Python process takes to import what a trial needs (Ray's workers each do once)."""
    import subprocess
    import sys
    import time

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, vqtune.train, vqtune.study"], check=True,
                   capture_output=True, timeout=300)
    return time.perf_counter() - start


def _local_resources(space: SearchSpace) -> tuple[float, float, int, int, Optional[int], str]:
    """CPUs and GPUs per trial as Ray would give them on this machine, the machine's CPUs and GPUs, how many
    trials run at once, and the device a trial trains on."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cpu, gpu = trial_resources(space, cpus, gpus, "this machine has")
    limits = [math.floor(cpus / cpu + 1e-9)] + ([math.floor(gpus / gpu + 1e-9)] if gpu else [])
    if space.max_concurrent:
        limits.append(space.max_concurrent)
    return cpu, gpu, cpus, gpus, max(1, min(limits)), "cuda" if gpu and gpus else "cpu"


def _describe(param) -> str:
    if isinstance(param, CategoricalParam):
        text = "categorical  " + ", ".join(str(c) for c in param.choices)
    else:
        kind = "float" if isinstance(param, FloatParam) else "int"
        text = f"{kind:<11}  {param.low:g} .. {param.high:g}"
        text += ", log" if param.log else f", step {param.step:g}" if param.step and param.step != 1 else ""
    if param.when:
        text += "   when " + " and ".join(f"{k} in {list(v)}" for k, v in param.when.items())
    return text


def _study_lines(space: SearchSpace) -> tuple[list[str], int]:
    """What the storage holds of the study, read-only, and how many trials the search has left to finish."""
    import optuna

    url, name = space.storage.url, space.study
    if is_sqlite(url) and not Path(make_url(url).database).exists():
        return [f"storage: {mask(url)} (no database yet: the run creates it)", f"study: {name} (new)"], space.n_trials
    try:
        storage = open_storage(space.storage, create=False)
    except StorageError as exc:
        return [f"storage: {mask(url)} ({str(exc).split(': ', 1)[-1]})", f"study: {name} (new)"], space.n_trials
    if name not in optuna.study.get_all_study_names(storage):
        return [f"storage: {mask(url)}", f"study: {name} (new)"], space.n_trials
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    finally:
        optuna.logging.set_verbosity(verbosity)
    counts = {state.name.lower(): n for state, n in count_states(study).items() if n}
    finished = counts.get("complete", 0) + counts.get("pruned", 0)
    held = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
    return [f"storage: {mask(url)}", f"study: {name} (exists: {held})"], max(0, space.n_trials - finished)


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def dry_run(space: SearchSpace, space_file: Optional[Path] = None, *, address: Optional[str] = None,
            out: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> None:
    """Print what ``vqtune run`` would do with ``space`` and how long it would take; write nothing."""
    import torch

    check_search(space)
    lines = [f"search space {space_file or space.study}: valid"]
    study_lines, remaining = _study_lines(space)
    lines += study_lines
    goals = ", ".join(f"{g.direction} {g.metric}" for g in space.goals)
    sampler = space.sampler.type + (f" (seed {space.sampler.seed})" if space.sampler.seed is not None else "")
    pruner = space.pruner.type + (f" {dict(space.pruner.options)}" if space.pruner.options else "")
    rule = space.perplexity
    lines += [f"objective: {goals}" + (f"; constraints: {', '.join(map(str, space.constraints))}"
                                      if space.constraints else ""),
              f"sampler: {sampler}; pruner: {pruner}; perplexity rule: "
              + (f"floor {rule.floor:g} after {rule.warmup_epochs} epochs" if rule.floor > 0 else "off"),
              f"trials: {space.n_trials} to finish, {remaining} left to run",
              "parameters:"]
    width = max(len(k) for k in space.space)
    lines += [f"  {key:<{width}}  {_describe(param)}" for key, param in space.space.items()]
    sizes, data = data_sizes(space.base)
    how = "" if sizes.exact else " (counted from the files, not decoded)"
    lines.append(f"data: {data.source}: {sizes.sources} sources -> {sizes.train_images} train / {sizes.val_images} "
                 f"val images of {data.size[0]}x{data.size[1]} ({sizes.val_sources} held out for validation){how}")
    cpu, gpu, cpus, gpus, concurrent, device = _local_resources(space)
    where = "this machine" if address is None and not os.environ.get("RAY_ADDRESS") else \
        "this machine (the Ray cluster's resources are not asked in a dry run, which starts no Ray)"
    lines.append(f"resources: {cpu:g} CPU and {gpu:g} GPU per trial; {where} has {cpus} CPUs and {gpus} GPUs: "
                 f"{concurrent} trial{'s' * (concurrent != 1)} at once")
    out("\n".join(lines))

    costed = [_Costed(space, config) for config in _corner_configs(space, cost_only=True)]
    cheapest, dearest = min(costed, key=lambda c: c.cost), max(costed, key=lambda c: c.cost)
    out(f"time estimate on {device} ({TIMED_STEPS} timed training steps per stage of the cheapest and the dearest "
        "configuration, extrapolated; without pruning, which ends trials sooner):")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpu)))  # as Ray gives a trial its CPUs
    try:
        estimates = []
        for label, pick in (("cheapest", cheapest), ("dearest", dearest)) if dearest is not cheapest else \
                (("every", cheapest),):
            seconds, parts = estimate_trial(pick.config, pick.sizes, pick.stage1, device)
            estimates.append(seconds)
            params = ", ".join(f"{k}={v}" for k, v in pick.params.items()) or "the base config"
            out(f"  {label} trial ({params}): {_duration(seconds)} per trial ({'; '.join(parts)})")
    finally:
        torch.set_num_threads(threads)
    load, loaded = _data_load_seconds(cheapest.stage1)
    start = _worker_start_seconds()
    out(f"  each trial also loads its data ({loaded}); each of the {concurrent} worker processes starts once "
        f"({_duration(start)}: importing torch and vqtune)")
    low, high = ((s + load) * remaining / concurrent + start for s in (min(estimates), max(estimates)))
    span = _duration(low) if len(estimates) == 1 else f"{_duration(low)} to {_duration(high)}"
    out(f"  search: {remaining} trial{'s' * (remaining != 1)} left, {concurrent} at once: {span}, plus Ray's own "
        "start")
    for line in search_warnings(space):
        warn(line)
