import pytest

from vqtune.config import TrainConfig


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
