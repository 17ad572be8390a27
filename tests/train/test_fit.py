import json
import math

import pytest
import torch
from PIL import Image

from vqtune.data import load_images
from vqtune.errors import CheckpointError, TrainingDiverged
from vqtune.models import VQVAE
from vqtune.train._vqvae import evaluate
from vqtune.train import (
    CHECKPOINT_FORMAT,
    Reporter,
    build_model,
    fit,
    load_checkpoint,
    load_vqvae,
    save_checkpoint,
)

METRICS = {
    "epoch", "train_recon_mse", "train_commitment", "val_recon_mse", "val_nmse", "val_psnr", "val_perplexity",
    "val_usage", "val_active_codes", "train_images_per_s", "val_images_per_s", "epoch_seconds", "rate_bits", "val_code_bits",
    "val_distortion_bits_per_dim", "val_bits_per_dim",
}


class Recorder(Reporter):
    def __init__(self, stop_at=None):
        self.epochs, self.steps, self.stop_at = [], 0, stop_at

    def on_step(self, epoch, step):
        self.steps += 1

    def report(self, epoch, metrics):
        self.epochs.append(dict(metrics))
        return epoch == self.stop_at


def _deterministic(history):
    return [{k: v for k, v in h.items() if "per_s" not in k and "seconds" not in k} for h in history]


def test_two_epochs_on_photos_lower_val_mse_and_fill_the_run_dir(tiny_config):
    data = load_images(tiny_config.data)
    torch.manual_seed(tiny_config.seed)
    untrained = build_model(tiny_config, in_channels=3).to(memory_format=torch.channels_last)
    variance = float(data.val.double().div(255).var())
    before = evaluate(untrained, data.val.split(64), variance)["val_recon_mse"]

    recorder = Recorder()
    result = fit(tiny_config, recorder, data=data)

    assert [m["epoch"] for m in recorder.epochs] == [1, 2]
    assert recorder.steps == 2 * (len(data.train) // 16)
    final = result.final
    assert set(final) == METRICS
    assert final["val_recon_mse"] < 0.6 * before
    assert final["val_psnr"] == pytest.approx(10 * math.log10(1 / final["val_recon_mse"]))
    assert final["val_nmse"] == pytest.approx(final["val_recon_mse"] / variance)
    assert 1.0 <= final["val_perplexity"] <= 32
    assert 0 < final["val_usage"] <= 1

    run = result.run_dir
    assert run == tiny_config.run_dir
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["val_recon_mse"] for line in lines] == [m["val_recon_mse"] for m in recorder.epochs]
    assert (run / "config.yaml").exists() and (run / "last.pt").exists() and (run / "best.pt").exists()
    usage = json.loads((run / "code_usage.json").read_text())
    assert len(usage["counts"]) == 32 and sum(usage["counts"]) == len(data.val) * 4 * 4  # every val latent
    assert sum(c > 0 for c in usage["counts"]) / 32 == pytest.approx(final["val_usage"])
    grid = Image.open(run / "reconstructions.png")
    assert grid.height > 2 * 16 and grid.width > grid.height  # originals above, reconstructions below


def test_seeded_runs_are_deterministic_on_cpu(tiny_config, tmp_path):
    first = fit(tiny_config)
    second = fit(tiny_config.model_copy(update={"run_dir": tmp_path / "again"}))
    assert _deterministic(first.history) == _deterministic(second.history)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)


def test_reporter_can_stop_and_resume_matches_an_uninterrupted_run(tiny_config, tmp_path):
    stopped = fit(tiny_config, Recorder(stop_at=1))
    assert stopped.stopped_early and len(stopped.history) == 1
    assert load_checkpoint(stopped.run_dir / "last.pt")["epoch"] == 1

    resumed = fit(tiny_config, resume=True)
    assert resumed.run_dir == stopped.run_dir
    whole = fit(tiny_config.model_copy(update={"run_dir": tmp_path / "whole"}))
    assert _deterministic(resumed.history) == _deterministic(whole.history)


def test_an_existing_run_is_never_overwritten(tiny_config):
    one_epoch = tiny_config.model_copy(update={"optim": tiny_config.optim.model_copy(update={"epochs": 1})})
    first = fit(one_epoch)
    marker = (first.run_dir / "last.pt").read_bytes()
    second = fit(one_epoch)
    assert second.run_dir.name == first.run_dir.name + "-2"
    assert (first.run_dir / "last.pt").read_bytes() == marker


def test_nan_loss_stops_with_an_error_naming_the_epoch(tiny_config, monkeypatch):
    steps = len(load_images(tiny_config.data).train) // tiny_config.optim.batch_size
    calls = {"n": 0}
    forward = VQVAE.forward

    def poisoned(self, x):
        out = forward(self, x)
        calls["n"] += self.training
        if self.training and calls["n"] > steps + 3:  # somewhere in the second epoch
            out = out._replace(reconstruction=out.reconstruction * float("nan"))
        return out

    monkeypatch.setattr(VQVAE, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="epoch 2: training loss became nan") as info:
        fit(tiny_config)
    assert info.value.epoch == 2
    assert len((tiny_config.run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # epoch 1 is kept


def test_checkpoint_round_trip(tiny_config):
    result = fit(tiny_config)
    model, config = load_vqvae(result.run_dir / "last.pt")
    assert config == tiny_config
    x = load_images(tiny_config.data).val[:4].float().div(255).sub(0.5)
    result.model.eval()
    # equal up to float rounding: the trained copy runs channels-last, the loaded one contiguous
    assert torch.allclose(model(x).reconstruction, result.model(x).reconstruction, atol=1e-6)
    state = load_checkpoint(result.run_dir / "last.pt")
    assert state["vqtune_version"] and state["format"] == CHECKPOINT_FORMAT
    assert [m["epoch"] for m in state["metrics"]] == [1, 2]


def test_truncated_or_foreign_checkpoints_are_clear_errors(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model={"w": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)

    save_checkpoint(path, model={})
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format": CHECKPOINT_FORMAT + 1, "vqtune_version": "9.9.9"}, path)
    with pytest.raises(CheckpointError, match="format .* written by vqtune 9.9.9"):
        load_checkpoint(path)

    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")

    path.write_bytes(bytes(range(256)) * 12)  # random bytes: damaged, not hostile
    with pytest.raises(CheckpointError, match="not a readable vqtune checkpoint") as caught:
        load_checkpoint(path)
    assert "run code" not in str(caught.value)


def test_checkpoints_hold_no_code(tmp_path):
    """A checkpoint that would run code on load is refused (weights_only)."""

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "x": Payload()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_a_kill_while_best_is_replaced_leaves_the_previous_best_whole(tiny_config, monkeypatch):
    from vqtune.train import _epochs

    first = fit(tiny_config.model_copy(update={"optim": tiny_config.optim.model_copy(update={"epochs": 1})}))
    best = first.run_dir / "best.pt"
    kept = best.read_bytes()

    def torn_copy(source, target):  # the process dies half way through the copy
        with open(target, "wb") as handle:
            handle.write(open(source, "rb").read()[:1000])
        raise KeyboardInterrupt

    monkeypatch.setattr(_epochs.shutil, "copyfile", torn_copy)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config, resume=True)
    assert best.read_bytes() == kept and load_checkpoint(best)["epoch"] == 1
    assert not [p.name for p in first.run_dir.iterdir() if p.name.endswith(".tmp")]  # no debris either
