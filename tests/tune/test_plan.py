"""What `vqtune run` warns about before a search, and the figures the dry run rests on."""

import re
from pathlib import Path

from tests.data.conftest import photo
from tests.tune.conftest import TINY_BASE, make_space
from vqtune.config import load_search_space
from vqtune.tune import search_warnings

ROOT = Path(__file__).resolve().parents[2]


def test_codebook_space_with_three_epochs_cannot_prune():
    space = load_search_space(ROOT / "search_spaces" / "codebook.yaml", ["base.optim.epochs=3"])
    warnings = [w for w in search_warnings(space) if w.startswith("pruner")]
    assert len(warnings) == 1
    assert "pruner hyperband cannot prune: its first rung is at epoch 3 (min_resource 3)" in warnings[0]
    assert "lower pruner.options.min_resource or train more epochs (now 3)" in warnings[0]
    ten = load_search_space(ROOT / "search_spaces" / "codebook.yaml", ["base.optim.epochs=10"])
    assert not [w for w in search_warnings(ten) if w.startswith("pruner")]


def test_median_pruner_warmup_and_startup(tmp_path):
    epochs = TINY_BASE["optim"]["epochs"]  # 4: the median pruner can prune at epochs 1 to 3
    fine = make_space(tmp_path, pruner={"type": "median", "options": {"n_warmup_steps": epochs - 1,
                                                                      "n_startup_trials": 1}})
    assert not [w for w in search_warnings(fine) if w.startswith("pruner")]
    late = make_space(tmp_path, pruner={"type": "median", "options": {"n_warmup_steps": epochs}})
    assert any("pruner median cannot prune: n_warmup_steps 4" in w for w in search_warnings(late))
    waiting = make_space(tmp_path, n_trials=3, pruner={"type": "median", "options": {"n_startup_trials": 3}})
    assert any("waits for n_startup_trials 3 trials and the search runs 3" in w for w in search_warnings(waiting))
    # an epochs parameter: the longest trial decides
    longer = make_space(tmp_path, pruner={"type": "median", "options": {"n_warmup_steps": epochs, "n_startup_trials": 1}},
                        space={"optim.epochs": {"type": "int", "low": 2, "high": 8}})
    assert not [w for w in search_warnings(longer) if w.startswith("pruner")]


def test_a_folder_of_23_photos_has_a_tiny_validation_split(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(23):
        photo(("astronaut", "coffee", "chelsea", "camera")[i % 4], 40 + i, 36).save(folder / f"p{i:02d}.png")
    base = {**TINY_BASE, "data": {"source": "folder", "path": str(folder), "resolution": 16, "crops_per_image": 4,
                                  "cache_dir": str(tmp_path / "cache")}}
    space = make_space(tmp_path, base=base)
    tiny = [w for w in search_warnings(space) if w.startswith("the validation split")]
    assert tiny == ["the validation split is tiny: 3 files (12 images) of 23, so every trial is judged on them "
                    "(wanted: at least 5 files and 100 images); add images, or raise data.val_fraction (now 0.15) "
                    "with --set base.data.val_fraction=..."]
    assert not (tmp_path / "cache").exists()  # counted, not decoded
    wider = make_space(tmp_path, base={**base, "data": {**base["data"], "val_fraction": 0.3, "crops_per_image": 16}})
    assert not [w for w in search_warnings(wider) if w.startswith("the validation split")]


def test_a_trial_too_short_to_restart_dead_codes(tmp_path):
    # 14 train photos x 32 crops = 448 images; batch 16: 28 steps an epoch, 112 in 4 epochs
    base = {**TINY_BASE, "quantizer": {"dead_code_steps": 200}}
    short = [w for w in search_warnings(make_space(tmp_path, base=base)) if w.startswith("quantizer.dead_code_steps")]
    assert short == ["quantizer.dead_code_steps 200 is more than the 112 training steps of a trial (optim.epochs 4 x "
                     "28 steps per epoch: 448 train images / optim.batch_size 16), so no unused code is ever "
                     "restarted and a collapsing codebook stays collapsed; lower quantizer.dead_code_steps, or give "
                     "each trial more steps: more optim.epochs or data.crops_per_image (now 32), or a smaller "
                     "optim.batch_size"]
    # the corner with the fewest steps speaks: batch 64 takes 7 steps an epoch, 28 in all; batch 16 takes 112
    batches = {"optim.batch_size": {"type": "categorical", "choices": [16, 64]}}
    space = make_space(tmp_path, base={**TINY_BASE, "quantizer": {"dead_code_steps": 50}}, space=batches)
    [line] = [w for w in search_warnings(space) if w.startswith("quantizer.dead_code_steps")]
    assert line.startswith("quantizer.dead_code_steps 50 is more than the 28 training steps of a trial with "
                           "optim.batch_size=64 (optim.epochs 4 x 7 steps per epoch")
    # restarts that can happen, restarts off, and a quantizer without a codebook: nothing to say
    for quantizer in ({"dead_code_steps": 112}, {"dead_code_steps": 0}, {"kind": "fsq", "levels": [4, 4, 4]}):
        model = {**TINY_BASE["model"], "codebook_size": 64}
        if quantizer.get("kind") == "fsq":
            model.pop("codebook_size")
        fine = make_space(tmp_path, base={**TINY_BASE, "model": model, "quantizer": quantizer},
                          space={"optim.lr": {"type": "float", "low": 1e-3, "high": 5e-3, "log": True}})
        assert not [w for w in search_warnings(fine) if w.startswith("quantizer.dead_code_steps")], quantizer


def test_the_cpu_recipe_in_the_header_of_highres_yaml_draws_no_warning():
    """The overrides its header gives for 2 CPU cores, read from the header itself: trials long enough to restart
    dead codes, a pruner that can prune, a validation split large enough to judge on."""
    path = ROOT / "search_spaces" / "highres.yaml"
    header = " ".join(line.lstrip("# ").rstrip("\\") for line in path.read_text().splitlines() if line.startswith("#"))
    overrides = re.findall(r"--set (\S+)", header)
    assert len(overrides) >= 10  # the whole recipe was read
    assert search_warnings(load_search_space(path, overrides)) == []
