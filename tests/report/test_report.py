"""Seeing a search: artifacts per trial, the trials table, the figures, the HTML report, the dashboard."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState
from PIL import Image
from rich.console import Console

from tests.tune.conftest import make_space
from vqtune.cli import main
from vqtune.report import _figures as figures
from vqtune.study import open_storage, trials_frame
from vqtune.tune import run_study


@pytest.fixture(scope="module")
def study_dir(ray_session, tmp_path_factory):
    """A real study: a complete trial, one pruned on the objective, one pruned for a collapsed codebook."""
    root = tmp_path_factory.mktemp("report")
    space = make_space(
        root, study="seen", n_trials=4, max_concurrent=1,
        space={
            "quantizer.dead_code_steps": {"type": "categorical", "choices": [0, 5]},
            "optim.lr": {"type": "categorical", "choices": [3e-3, 1e-5]},
            "model.downsample": {"type": "int", "low": 1, "high": 2},
        },
    )
    study = optuna.create_study(study_name="seen", storage=open_storage(space.storage))
    for restarts, lr, down in [(5, 3e-3, 2), (5, 3e-3, 1), (5, 1e-5, 2), (0, 3e-3, 2)]:
        study.enqueue_trial({"quantizer.dead_code_steps": restarts, "optim.lr": lr, "model.downsample": down})
    run_study(space, console=Console(file=open("/dev/null", "w")))
    return root, space


def _study(space):
    storage = open_storage(space.storage)
    return optuna.load_study(study_name=space.study, storage=storage), storage


def test_artifacts_are_uploaded_for_finished_and_pruned_trials(study_dir):
    root, space = study_dir
    study, storage = _study(space)
    states = {t.state for t in study.get_trials()}
    assert {TrialState.COMPLETE, TrialState.PRUNED} <= states
    for trial in study.get_trials():
        names = {m.filename for m in get_all_artifact_meta(trial, storage=storage)}
        assert names == {"final_metrics.json", "reconstructions.png", "code_usage.png", "curves.png"}, trial.number
    assert (root / "artifacts").is_dir()  # next to the SQLite database


def test_trials_table_is_flat(study_dir):
    _, space = study_dir
    study, _ = _study(space)
    frame = trials_frame(study)
    assert len(frame) == 4
    for column in ("number", "state", "value", "optim.lr", "model.downsample", "pruned_by", "val_perplexity", "val_psnr",
                   "epochs", "bits_per_image", "latent_cells"):
        assert column in frame.columns, column
    assert not any(isinstance(v, (dict, list)) for v in frame.drop(columns=["gpu_ids"]).to_numpy().ravel())
    # 16x16 images: downsample 2 -> 4x4 cells, 1 -> 8x8; 64 codes -> 6 bits a cell
    assert sorted(set(frame["latent_cells"])) == [16.0, 64.0]
    assert set(frame["bits_per_image"]) == {96.0, 384.0}


def test_figures_are_built_from_the_study(study_dir):
    _, space = study_dir
    study, _ = _study(space)
    frame = trials_frame(study)
    assert len(figures.optimization_history(study).data) >= 1
    intermediate = figures.intermediate_values(study)
    assert any(trace.name == "pruned here" for trace in intermediate.data)
    parallel = figures.parallel_coordinates(study)
    assert parallel.data and "Parallel Coordinate" in parallel.layout.title.text
    assert len(figures.perplexity_vs_mse(frame).data) >= 2  # complete and pruned
    rate = figures.rate_distortion(frame)
    assert any(trace.name == "Pareto front" for trace in rate.data)


def test_pareto_front():
    rate = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    distortion = np.array([5.0, 3.0, 4.0, 3.0, 1.0])
    assert figures.pareto_front(rate, distortion) == [0, 1, 4]


def test_report_html_csv_parquet(study_dir, capsys):
    root, space = study_dir
    url = space.storage.url
    out = root / "out"
    code = main(["report", "seen", "--storage", url, "-o", str(out / "report.html"), "--csv", str(root / "t.csv"),
                 "--parquet", str(root / "t.parquet")])
    assert code == 0
    page = (out / "report.html").read_text()
    for title in ("Optimization history", "Intermediate values", "Parameter importances", "Parallel coordinates",
                  "Perplexity vs reconstruction MSE", "Rate vs distortion"):
        assert f'data-figure="{title}"' in page
    assert "<script src=" not in page and "plotly" in page.lower()  # plotly inlined: works offline
    assert page.count('class="reconstructions"') >= 1 and "data:image/png;base64," in page
    table = pd.read_csv(root / "t.csv")
    assert len(table) == 4 and "optim.lr" in table.columns
    assert pd.read_parquet(root / "t.parquet").shape[0] == 4


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(study_dir, tmp_path):
    root, space = study_dir
    report = tmp_path / "report.html"
    assert main(["report", "seen", "--storage", space.storage.url, "-o", str(report)]) == 0
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", "--virtual-time-budget=5000",
         f"--screenshot={shot}", report.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # text, axes and curves, not a blank page
    assert (pixels < 128).mean() > 0.005


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5):
    request = urllib.request.Request(url, headers={"Authorization": "Token seen-token"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def test_dashboard_serves_the_study_and_its_artifacts(study_dir):
    _, space = study_dir
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vqtune.cli", "dashboard", "--storage", space.storage.url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "VQTUNE_DASHBOARD_TOKEN": "seen-token"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, body = _get(f"{base}/api/meta")
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        assert status == 200 and json.loads(body)["artifact_is_available"] is True
        studies = json.loads(_get(f"{base}/api/studies")[1])["study_summaries"]
        study = next(s for s in studies if s["study_name"] == "seen")
        detail = json.loads(_get(f"{base}/api/studies/{study['study_id']}")[1])
        pruned = [t for t in detail["trials"] if t["state"].lower() == "pruned"]
        assert pruned and all(t["intermediate_values"] for t in pruned)
        artifacts = [(t["trial_id"], a) for t in detail["trials"] for a in t["artifacts"]]
        assert {a["filename"] for _, a in artifacts} == {"final_metrics.json", "reconstructions.png", "code_usage.png", "curves.png"}
        trial_id, artifact = next((t, a) for t, a in artifacts if a["filename"] == "reconstructions.png")
        status, png = _get(f"{base}/artifacts/{study['study_id']}/{trial_id}/{artifact['artifact_id']}")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/?token=seen-token" in output  # the URL is printed, with its token
