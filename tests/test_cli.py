"""The command line as a user meets it: exit codes, one-line errors, the run directory."""

import subprocess
import sys

import pytest

from vqtune.cli import main

SMALL = {
    "data.resolution": 16, "data.crops_per_image": 8, "model.hidden": 8, "model.residual_hidden": 4,
    "model.residual_blocks": 1, "model.embedding_dim": 4, "model.codebook_size": 16, "optim.epochs": 2,
    "optim.batch_size": 16, "device": "cpu",
}


def _set(settings: dict) -> list[str]:
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


TINY = _set(SMALL)


def test_train_writes_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--set", f"run_dir={run}"]) == 0
    out = capsys.readouterr()
    assert f"done: {run}" in out.out
    assert "epoch   2/2" in out.err
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "code_usage.json", "config.yaml", "last.pt", "metrics.jsonl", "reconstructions.png"
    ]
    # --resume continues the same run with more epochs
    assert main(["train", "--resume", str(run), "--set", "optim.epochs=3"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    # resuming with another model is refused, and the run is left as it was
    assert main(["train", "--resume", str(run), "--set", "model.hidden=12", "--set", "optim.epochs=4"]) == 2
    assert "does not fit this config's model" in capsys.readouterr().err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_train_from_a_config_file(tmp_path, capsys):
    config = tmp_path / "small.yaml"
    config.write_text(f"model:\n  codebook_size: 8\nrun_dir: {tmp_path / 'from-file'}\n")
    without_codebook = _set({k: v for k, v in SMALL.items() if k != "model.codebook_size"})
    assert main(["train", str(config), *without_codebook]) == 0
    assert "/8" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--set", "model.codebok_size=3"], "--set model.codebok_size: unknown key 'codebok_size' in model"),
        (["train", "--set", "model.downsample=5"], "model.downsample: Input should be less than or equal to 4"),
        (["train", "missing.yaml"], "missing.yaml: no such file"),
        (["train", "--set", "data.source=folder", "--set", "device=cpu"], "data.path"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("vqtune: error: ")
    assert not (tmp_path / "runs").exists()


def test_console_script_exit_code_and_debug_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: -1\n")
    plain = subprocess.run([sys.executable, "-m", "vqtune.cli", "train", str(bad)], capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.strip() == f"vqtune: error: {bad}: optim.lr: Input should be greater than 0 (got -1)"
    debug = subprocess.run([sys.executable, "-m", "vqtune.cli", "--debug", "train", str(bad)],
                           capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
