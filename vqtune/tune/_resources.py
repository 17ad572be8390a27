"""The share of a machine each trial asks for: one rule for the runner (the nodes of a Ray cluster) and the dry
run (this machine). Imports no Ray."""

from __future__ import annotations

from vqtune.config import SearchSpace
from vqtune.errors import ConfigError


def trial_resources(space: SearchSpace, most_cpus: float, most_gpus: float,
                    where: str) -> tuple[float, float]:
    """CPUs and GPUs per trial of ``space.resources``; ``gpu: auto`` is 1/trials_per_gpu where there are GPUs,
    else none.

    ``most_cpus`` and ``most_gpus`` are what the largest node has; a trial that asks for more would wait for
    ever, so that is refused, the message saying ``where`` (``"no Ray node has more than"``, ``"this machine
    has"``) before the number.
    """
    resources = space.resources
    cpu, gpu = resources.cpu, resources.gpu
    if gpu == "auto":
        gpu = 1.0 / resources.trials_per_gpu if most_gpus > 0 else 0.0
    if cpu > most_cpus:
        raise ConfigError(f"resources.cpu: {cpu:g} CPUs per trial, but {where} {most_cpus:g}; lower resources.cpu")
    if gpu > most_gpus:
        raise ConfigError(f"resources.gpu: {gpu:g} GPUs per trial, but {where} {most_gpus:g}; use gpu: auto or 0")
    return cpu, gpu
