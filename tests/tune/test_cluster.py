"""A multi-node Ray cluster on this machine (two worker nodes, one with fake GPUs) and a real PostgreSQL."""

import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.tune.conftest import TINY_BASE


@pytest.fixture
def cluster(ray_session):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1, num_gpus=2)  # fake GPUs: Ray schedules them, CUDA is not behind them
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def _space(tmp_path, url, **changes):
    # Trials of a few seconds each: a worker process runs trial after trial, so with trials much shorter than
    # a worker's start the first worker up would run them all.
    space = {
        "study": "cluster", "n_trials": 4, "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
        "perplexity": {"floor": 0}, "storage": url, "resources": {"cpu": 1, "gpu": 0},
        "trial_dir": str(tmp_path / "trials"),
        "base": {**TINY_BASE, "data": {**TINY_BASE["data"], "crops_per_image": 256},
                 "optim": {**TINY_BASE["optim"], "epochs": 2}},
        "space": {"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
        **changes,
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def test_trials_land_on_both_nodes_and_all_are_in_postgres(cluster, fresh_postgres_db, tmp_path):
    path = _space(tmp_path, fresh_postgres_db)
    run = subprocess.run([sys.executable, "-m", "vqtune.cli", "run", str(path), "--address", cluster.address],
                         capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    password = fresh_postgres_db.split(":")[2].split("@")[0]
    assert password not in run.stdout + run.stderr
    trials = optuna.load_study(study_name="cluster", storage=fresh_postgres_db).get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(sorted(t.intermediate_values) == [1, 2] for t in trials)
    nodes = {t.user_attrs["node_id"] for t in trials}
    assert len(nodes) == 2  # the head has no CPUs: both worker nodes ran trials


def test_sqlite_is_refused_on_a_multi_node_cluster(cluster, tmp_path):
    db = tmp_path / "s.db"
    path = _space(tmp_path, f"sqlite:///{db}")
    run = subprocess.run([sys.executable, "-m", "vqtune.cli", "run", str(path), "--address", cluster.address],
                         capture_output=True, text=True, timeout=200, cwd=tmp_path)
    assert run.returncode == 2
    assert "SQLite does not work across the 3 hosts of this Ray cluster" in run.stderr
    assert not db.exists()
