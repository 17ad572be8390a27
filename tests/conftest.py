import os
import shutil
import tempfile

import pytest

from vqtune.config import TrainConfig

# Each test process has a Ray directory of its own. Ray's default, /tmp/ray, records the cluster started last, and a
# session that starts without an address joins it: with test processes side by side (make test runs several), a
# search would join another process's cluster (a multi-node one, or one being shut down). Short, as Ray's socket
# paths below it must stay within the 107 characters of a Unix socket path.
_RAY_TMPDIR = tempfile.mkdtemp(prefix="vqtray-", dir="/tmp")
os.environ["RAY_TMPDIR"] = _RAY_TMPDIR


def pytest_unconfigure(config):
    shutil.rmtree(_RAY_TMPDIR, ignore_errors=True)


@pytest.fixture
def tiny_config(tmp_path) -> TrainConfig:
    """A run on real photo crops (scikit-image) with a model small enough to train in about a second."""
    return TrainConfig.model_validate(
        {
            "data": {"source": "skimage-photos", "resolution": 16, "crops_per_image": 96},
            "model": {"hidden": 16, "residual_hidden": 8, "residual_blocks": 1, "downsample": 2,
                      "embedding_dim": 8, "codebook_size": 32},
            "quantizer": {"dead_code_steps": 20},
            "optim": {"lr": 3e-3, "batch_size": 16, "epochs": 2},
            "device": "cpu",
            "run_dir": str(tmp_path / "run"),
        }
    )


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module, as a search trial of ``resources.cpu: 1`` has: on tiny tensors a
    second one costs more than it saves, and on a busy machine many times more."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


from tests.postgres import fresh_postgres_db, postgres_url  # noqa: E402,F401  (fixtures)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray session for the whole test run (starting one costs seconds), with 2 fake GPUs."""
    import os

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
