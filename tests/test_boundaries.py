"""The seams a user notices: reading a study needs no Ray, and importing vqtune changes no global setting."""

import json
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
    import vqtune.study, vqtune.train, vqtune.tune
    after_filters, after_loggers, after_verbosity = state()
    changed = {name: level for name, level in after_loggers.items() if name in loggers and loggers[name] != level}
    print(json.dumps({"filters": after_filters == filters, "loggers": changed,
                      "verbosity": after_verbosity == verbosity}))
""")


def test_importing_vqtune_changes_no_logging_level_or_warning_filter():
    child = subprocess.run([sys.executable, "-c", IMPORT_STATE], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == {"filters": True, "loggers": {}, "verbosity": True}
