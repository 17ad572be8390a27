"""A damaged checkpoint is called damaged: a text file, random bytes, a truncated file, a missing field, the
weights of another model, or one flipped bit in its tensors give `vqtune sample`, `vqtune train --resume` and a
stage-2 run on `prior.vqvae_checkpoint` one line naming the file, exit status 2, and nothing written."""

import random
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from vqtune.cli import main
from vqtune.config import PriorConfig, TrainConfig
from vqtune.errors import CheckpointError
from vqtune.train import build_model, fit, load_checkpoint, save_checkpoint
from vqtune.train._prior import build_prior

FLIPS = 12


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run of both stages (one epoch each of a tiny VQ-VAE and prior on photo crops)."""
    config = TrainConfig.model_validate({
        "data": {"source": "skimage-photos", "resolution": 16, "crops_per_image": 8},
        "model": {"hidden": 8, "residual_hidden": 4, "residual_blocks": 1, "downsample": 2, "embedding_dim": 4,
                  "codebook_size": 16},
        "optim": {"lr": 3e-3, "batch_size": 16, "epochs": 1},
        "prior": {"channels": 8, "layers": 2, "epochs": 1},
        "device": "cpu",
        "run_dir": str(tmp_path_factory.mktemp("trained") / "run"),
    })
    return fit(config).run_dir


def tensor_data(path: Path) -> list[tuple[int, int]]:
    """The byte ranges of the file that hold tensor data (the zip entries under data/, stored uncompressed)."""
    ranges = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            if "/data/" in info.filename and info.file_size:
                handle.seek(info.header_offset)
                header = handle.read(30)
                start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + \
                    int.from_bytes(header[28:30], "little")
                ranges.append((start, start + info.file_size))
    return ranges


def flip(i: int):
    def damage(path: Path) -> None:
        ranges = tensor_data(path)
        start, end = ranges[i * len(ranges) // FLIPS]
        offset = random.Random(i).randrange(start, end)
        data = bytearray(path.read_bytes())
        data[offset] ^= 1 << (i % 8)
        path.write_bytes(bytes(data))

    return damage


def rewritten(change):
    """The checkpoint as read, changed by ``change(payload)`` and saved again (with a digest that fits it)."""

    def damage(path: Path) -> None:
        payload = load_checkpoint(path)
        change(payload)
        save_checkpoint(path, **{k: v for k, v in payload.items() if k not in ("format", "vqtune_version", "digest")})

    return damage


def drop_a_weight(payload: dict) -> None:
    payload["model"].pop(next(iter(payload["model"])))


def other_model(payload: dict) -> None:
    """Weights of a model twice as wide as the one the checkpoint's own fields describe."""
    if "prior" in payload:
        prior = PriorConfig.model_validate(payload["prior"])
        wider = build_prior(prior.model_copy(update={"channels": 2 * prior.channels}), payload["codebook_size"])
    else:
        config = TrainConfig.model_validate(payload["config"])
        wider = build_model(config.model_copy(update={"model": config.model.model_copy(
            update={"hidden": 2 * config.model.hidden})}), payload["in_channels"])
    payload["model"] = wider.state_dict()


DAMAGES = {
    "text": lambda path: path.write_text("epoch 3, val_recon_mse 0.004\n"),
    "random-bytes": lambda path: path.write_bytes(random.Random(0).randbytes(4096)),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "missing-field": rewritten(lambda payload: payload.pop("model")),
    "missing-weight": rewritten(drop_a_weight),
    "other-model": rewritten(other_model),
    **{f"bit-flip-{i}": flip(i) for i in range(FLIPS)},
}

COMMANDS = {  # the checkpoint each command reads first, and its arguments
    "sample": ("prior_best.pt", ["sample", "{run}", "--n", "8", "-o", "{run}/samples.png"]),
    "resume": ("last.pt", ["train", "--resume", "{run}"]),
    "stage-2": ("best.pt", ["train", "--set", "prior.vqvae_checkpoint={run}/best.pt", "--set", "device=cpu",
                            "--set", "run_dir={run}/prior-only"]),
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_checkpoint_is_one_line_and_exit_2(trained, tmp_path, capsys, command, damage):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    target, argv = COMMANDS[command]
    DAMAGES[damage](run_dir / target)
    before = {path: path.read_bytes() for path in run_dir.rglob("*")}

    assert main([arg.format(run=run_dir) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"vqtune: error: {run_dir / target}: "), err
    if damage.startswith("bit-flip"):
        assert "damaged checkpoint" in err and "use another checkpoint of the run" in err, err
    assert {path: path.read_bytes() for path in run_dir.rglob("*")} == before  # nothing written, nothing lost


def test_every_checkpoint_carries_a_digest_and_old_ones_still_load(trained, tmp_path):
    state = load_checkpoint(trained / "best.pt")
    assert len(state["digest"]) == 64
    # A checkpoint written before digests (the same fields, no digest) loads unchecked.
    old = tmp_path / "old.pt"
    torch.save({k: v for k, v in state.items() if k != "digest"}, old)
    assert torch.equal(load_checkpoint(old)["model"]["encoder.net.0.weight"], state["model"]["encoder.net.0.weight"])
    # A changed field outside the tensors is caught too.
    state["epoch"] = 7
    torch.save(state, old)
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        load_checkpoint(old)


def test_a_prior_search_on_a_checkpoint_without_its_config_is_refused_in_one_line(trained, tmp_path, capsys):
    state = {k: v for k, v in load_checkpoint(trained / "best.pt").items() if k not in ("config", "digest")}
    save_checkpoint(tmp_path / "noconfig.pt", **state)  # whole, with its digest, but no config
    space = tmp_path / "prior.yaml"
    space.write_text(f"study: p\nobjective: {{metric: val_nll}}\nstorage: sqlite:///{tmp_path}/p.db\n"
                     f"base: {{prior: {{vqvae_checkpoint: {tmp_path}/noconfig.pt, epochs: 2}}}}\n"
                     "space:\n  prior.lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n")
    assert main(["run", str(space), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "noconfig.pt: damaged checkpoint (no field 'config')" in error
    assert not (tmp_path / "p.db").exists()
