"""The seams a user notices: reading a study needs no Ray, and importing vqtune changes no global setting."""

import json
import os
import subprocess
import sys
import textwrap

from rich.console import Console

from tests.tune.conftest import make_space
from vqtune.tune import run_study

READ_ONLY = textwrap.dedent("""
    import json, sys
    from unittest import mock
    from vqtune.cli import main

    storage, out = sys.argv[1], sys.argv[2]
    codes = {
        "studies": main(["studies", "--storage", storage, "--format", "csv"]),
        "trials": main(["trials", "--study", "tiny", "--storage", storage, "--format", "json"]),
        "export": main(["export", "--study", "tiny", "--storage", storage, "-o", out + "/best.yaml"]),
        "report": main(["report", "tiny", "--storage", storage, "-o", out + "/report.html"]),
    }
    class NotServed:  # wsgiref's server, binding nothing
        def __init__(self, host, port, *args):
            self.server_port = port
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return None
        def serve_forever(self):
            return None
    with mock.patch("vqtune.dashboard.make_server", NotServed):
        codes["dashboard"] = main(["dashboard", "--storage", storage])
    codes["delete"] = main(["delete", "--study", "tiny", "--storage", storage, "--yes"])
    loaded = [name for name in sys.modules if name.split(".")[0] in ("ray", "torch")]
    print(json.dumps({"codes": codes, "loaded": loaded}))
""")


def test_read_only_commands_import_neither_ray_nor_torch(ray_session, tmp_path):
    space = make_space(tmp_path, n_trials=1, max_concurrent=1)
    run_study(space, console=Console(file=open("/dev/null", "w")))

    child = subprocess.run([sys.executable, "-c", READ_ONLY, space.storage.url, str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["codes"] == {"studies": 0, "trials": 0, "export": 0, "report": 0, "dashboard": 0, "delete": 0}
    assert result["loaded"] == []
    assert (tmp_path / "best.yaml").exists() and (tmp_path / "report.html").exists()


IMPORT_STATE = textwrap.dedent("""
    import json, logging, warnings
    # What the libraries vqtune uses do to the global state on import is theirs, not vqtune's.
    import optuna, optuna_dashboard, pandas, plotly, ray, ray.tune, ray.tune.search, rich, sqlalchemy, torch

    def state():
        loggers = {name: logging.getLogger(name).level for name in list(logging.Logger.manager.loggerDict)}
        return [repr(f) for f in warnings.filters], loggers, optuna.logging.get_verbosity()

    filters, loggers, verbosity = state()
    import vqtune, vqtune.cli, vqtune.config, vqtune.dashboard, vqtune.data, vqtune.models, vqtune.report
    import vqtune.study, vqtune.train, vqtune.tune, vqtune.tune._runner
    after_filters, after_loggers, after_verbosity = state()
    changed = {name: level for name, level in after_loggers.items() if name in loggers and loggers[name] != level}
    print(json.dumps({"filters": after_filters == filters, "loggers": changed,
                      "verbosity": after_verbosity == verbosity}))
""")


def test_importing_vqtune_changes_no_logging_level_or_warning_filter():
    child = subprocess.run([sys.executable, "-c", IMPORT_STATE], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == {"filters": True, "loggers": {}, "verbosity": True}


DRY_RUN = textwrap.dedent("""
    import json, sys
    from vqtune.cli import main

    code = main(["run", sys.argv[1], "--dry-run"])
    loaded = sorted({name.split(".")[0] for name in sys.modules} & {"ray", "tensorboardX"})
    print(json.dumps({"code": code, "loaded": loaded}))
""")


def test_dry_run_writes_nothing_and_imports_no_ray(tmp_path):
    """On a fresh directory with a folder of photos: no database, run directory, artifact or decoded-data cache
    appears, and Ray is never imported; the estimate is printed and positive."""
    import re

    import yaml

    from tests.data.conftest import photo
    from tests.tune.conftest import TINY_BASE

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "moon")):
        photo(name, 48 + i, 40).save(photos / f"{name}.png")
    base = {**TINY_BASE, "data": {"source": "folder", "path": str(photos), "resolution": 16, "crops_per_image": 8}}
    space = {"study": "dry", "n_trials": 4, "pruner": {"type": "median", "options": {"n_warmup_steps": 4}},
             "resources": {"cpu": 1, "gpu": 0}, "base": base,
             "space": {"model.codebook_size": {"type": "categorical", "choices": [16, 64]},
                       "model.downsample": {"type": "int", "low": 1, "high": 2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    env = {**os.environ, "HOME": str(tmp_path), "VQTUNE_CACHE_DIR": str(tmp_path / "cache")}
    child = subprocess.run([sys.executable, "-c", DRY_RUN, "space.yaml"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    out = child.stdout
    assert "study: dry (new)" in out and "no database yet" in out
    assert "model.codebook_size  categorical  16, 64" in out
    assert "1 CPU and 0 GPU per trial" in out
    assert "7 sources -> 48 train / 8 val images of 16x16 (1 held out for validation)" in out  # 8 crops each
    per_trial = [float(s) for s in re.findall(r"([0-9.]+) (?:s|min|h) per trial", out)]
    assert len(per_trial) == 2 and all(s > 0 for s in per_trial)
    assert re.search(r"search: 4 trials left, \d+ at once: [0-9.]+ (s|min|h) to", out)
    assert "without pruning" in out
    # warnings on stderr: the pruner waits 4 epochs of 4; 1 file held out
    assert "pruner median cannot prune" in child.stderr
    assert "the validation split is tiny: 1 file (8 images) of 7" in child.stderr


def test_importing_the_search_layer_imports_no_ray_until_the_runner_is_used():
    """``vqtune.tune`` holds the dry run, which needs no Ray; Ray comes with the first name of the runner."""
    code = ("import sys, vqtune.tune; before = 'ray' in sys.modules; vqtune.tune.run_study; "
            "print(before, 'ray' in sys.modules)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["False", "True"]
