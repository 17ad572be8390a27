"""Sizes that cannot fit are refused by name: a training key past its bound, a search range whose end the training
schema refuses (or that Optuna cannot draw exactly), and a dashboard token anyone could guess give one line and
exit status 2 before anything is built or written."""

import pytest
import yaml

from tests.tune.conftest import TINY_BASE
from vqtune.cli import main
from vqtune.config import load_train_config


@pytest.mark.parametrize("override, key", [
    ("model.codebook_size=100000000000", "model.codebook_size"),
    ("model.hidden=4097", "model.hidden"),
    ("model.embedding_dim=100000", "model.embedding_dim"),
    ("data.resolution=16385", "data.resolution"),
    ("data.crops_per_image=100000000000", "data.crops_per_image"),
    ("optim.epochs=1000001", "optim.epochs"),
    ("optim.batch_size=100000000000", "optim.batch_size"),
    ("quantizer.dead_code_steps=100000000000000000000000", "quantizer.dead_code_steps"),
    ("prior.channels=100000", "prior.channels"),
    ("seed=100000000000000000000000", "seed"),
])
def test_a_training_size_past_its_bound_is_one_line_naming_the_key(tmp_path, capsys, override, key):
    run_dir = tmp_path / "run"
    assert main(["train", "--set", override, "--set", f"run_dir={run_dir}", "--set", "device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f": {key}: " in err and ("less than or equal to" in err or "at most" in err), err
    assert not run_dir.exists()


def test_fsq_levels_whose_product_is_too_large_are_refused():
    with pytest.raises(Exception, match="quantizer.levels: the product of the levels, K = 1000000000, must be at "
                                        r"most 2\^20"):
        load_train_config(None, ["quantizer.kind=fsq", "quantizer.levels=1000,1000,1000"])


def test_the_largest_sizes_allowed_are_accepted():
    config = load_train_config(None, ["model.codebook_size=1048576", "model.hidden=4096", "data.resolution=16384",
                                      "optim.epochs=1000000"])
    assert config.model.codebook_size == 2**20 and config.data.size == (16384, 16384)


@pytest.mark.parametrize("param, expected", [
    ({"type": "int", "low": 16, "high": 10**23, "log": True},
     "space.model.codebook_size.high: must be at most 2^53"),
    ({"type": "int", "low": 16, "high": 10**11, "log": True},
     "space.model.codebook_size.high: space.model.codebook_size = 100000000000 gives an invalid training config: "
     "model.codebook_size: Input should be less than or equal to 1048576 (got 100000000000); narrow the range"),
    ({"type": "int", "low": -(10**23), "high": 64},
     "space.model.codebook_size.low: must be at most 2^53"),
    ({"type": "float", "low": 16, "high": float("inf")},
     "space.model.codebook_size.high: Input should be a finite number"),
])
def test_a_search_range_past_what_its_key_takes_names_its_end(tmp_path, capsys, param, expected):
    space = {"study": "big", "n_trials": 1, "storage": f"sqlite:///{tmp_path}/studies.db",
             "trial_dir": str(tmp_path / "trials"), "base": TINY_BASE, "space": {"model.codebook_size": param}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    assert main(["run", str(tmp_path / "space.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"space.yaml: {expected}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


@pytest.mark.parametrize("token, expected", [
    (" \t ", "$VQTUNE_DASHBOARD_TOKEN: empty; give a secret, or unset VQTUNE_DASHBOARD_TOKEN for a random one"),
    ("abc", "$VQTUNE_DASHBOARD_TOKEN: shorter than 8 characters, so easily guessed; give a longer secret, or unset "
            "VQTUNE_DASHBOARD_TOKEN"),
    ("  abc   ", "$VQTUNE_DASHBOARD_TOKEN: shorter than 8 characters"),
])
def test_a_blank_or_short_dashboard_token_from_the_environment_is_refused(tmp_path, capsys, monkeypatch, token,
                                                                          expected):
    monkeypatch.setenv("VQTUNE_DASHBOARD_TOKEN", token)
    assert main(["dashboard", "--storage", f"sqlite:///{tmp_path}/studies.db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vqtune: error: {expected}") and err.count("\n") == 1, err
    assert "abc" not in err  # the secret is never printed
    assert list(tmp_path.iterdir()) == []


def test_a_short_token_option_is_refused_too(tmp_path, capsys):
    assert main(["dashboard", "--storage", f"sqlite:///{tmp_path}/studies.db", "--token", "1234567"]) == 2
    assert capsys.readouterr().err.startswith("vqtune: error: --token: shorter than 8 characters, so easily guessed")
