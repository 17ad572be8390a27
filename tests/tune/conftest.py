import os
import sys
from pathlib import Path

import pytest
import yaml

from vqtune.config import PARAM_TYPES, SearchSpace, validate

TINY_BASE = {
    "data": {"source": "skimage-photos", "resolution": 16, "crops_per_image": 32},
    "model": {"hidden": 16, "residual_hidden": 8, "residual_blocks": 1, "downsample": 2, "embedding_dim": 8,
              "codebook_size": 64},
    "quantizer": {"dead_code_steps": 5},
    "optim": {"lr": 3e-3, "batch_size": 16, "epochs": 4},
}


def make_space(tmp_path, **changes) -> SearchSpace:
    """A search on real photo crops with a model that trains in a fraction of a second per epoch."""
    data = {
        "study": "tiny",
        "n_trials": 3,
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 2}},
        "perplexity": {"floor": 0.1, "warmup_epochs": 1},
        "storage": {"url": f"sqlite:///{tmp_path}/studies.db", "heartbeat_interval": 1, "grace_period": 3},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
        "trial_dir": str(tmp_path / "trials"),
        "base": TINY_BASE,
        "space": {
            "optim.lr": {"type": "float", "low": 1e-3, "high": 5e-3, "log": True},
            "model.codebook_size": {"type": "categorical", "choices": [32, 64]},
        },
    }
    data.update(changes)
    return validate(SearchSpace, data, "test space", tags=PARAM_TYPES)


@pytest.fixture
def space_factory(tmp_path):
    return lambda **changes: make_space(tmp_path, **changes)


def cli_search(directory: Path, study: str, storage: str, trial_dir: Path, n_trials: int, epochs: int):
    """A one-parameter search of ``n_trials`` trials, one at a time, written to ``directory``/space.yaml for
    ``vqtune run`` in a subprocess: the command and its environment (unbuffered output, Ray without tokens)."""
    space = {
        "study": study, "n_trials": n_trials, "sampler": {"type": "random", "seed": 1}, "pruner": {"type": "none"},
        "perplexity": {"floor": 0}, "storage": {"url": storage, "heartbeat_interval": 1, "grace_period": 3},
        "resources": {"cpu": 1, "gpu": 0}, "max_concurrent": 1, "trial_dir": str(trial_dir),
        "artifact_dir": str(directory / "artifacts"),
        "base": {**TINY_BASE, "optim": {**TINY_BASE["optim"], "epochs": epochs}},
        "space": {"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
    }
    path = directory / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    command = [sys.executable, "-m", "vqtune.cli", "run", str(path)]
    return command, {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}
