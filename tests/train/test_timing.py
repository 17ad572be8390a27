"""The step timing behind the dry run's estimate, and the pictures a reporter asks of the trainer."""

from PIL import Image

from vqtune.config import load_train_config
from vqtune.train import Reporter, fit, forward_flops, time_prior_steps, time_vqvae_steps

TINY = ["data.resolution=16", "data.crops_per_image=4", "model.hidden=16", "model.residual_hidden=8",
        "model.residual_blocks=1", "model.embedding_dim=8", "model.codebook_size=32", "optim.batch_size=8",
        "prior.channels=8", "prior.layers=2", "prior.batch_size=8", "device=cpu"]


def test_steps_are_timed_on_stand_in_data(tmp_path):
    config = load_train_config(None, [*TINY, f"run_dir={tmp_path}/run"])
    vqvae, prior = time_vqvae_steps(config, steps=2), time_prior_steps(config, steps=2)
    assert vqvae.stage == "vqvae" and vqvae.batch_size == 8 and vqvae.step_seconds > 0
    assert vqvae.eval_seconds_per_item > 0
    assert prior.stage == "prior" and prior.step_seconds > 0 and prior.eval_seconds_per_item > 0
    assert not (tmp_path / "run").exists()  # nothing written


def test_flops_rank_a_finer_grid_and_a_wider_prior_dearer():
    coarse = load_train_config(None, [*TINY, "model.downsample=2"])
    fine = load_train_config(None, [*TINY, "model.downsample=1"])
    assert forward_flops(fine)["vqvae"] > forward_flops(coarse)["vqvae"]
    narrow = forward_flops(load_train_config(None, [*TINY, "prior.epochs=1"]))
    wide = forward_flops(load_train_config(None, [*TINY, "prior.epochs=1", "prior.channels=32"]))
    assert set(narrow) == {"vqvae", "prior"} and wide["prior"] > narrow["prior"] and wide["vqvae"] == narrow["vqvae"]


class EveryOther(Reporter):
    def wants_snapshot(self, epoch):
        return epoch % 2 == 0


def test_the_trainer_writes_the_reconstructions_a_reporter_asks_for(tmp_path):
    config = load_train_config(None, [*TINY, "optim.epochs=3", f"run_dir={tmp_path}/run"])
    result = fit(config, EveryOther())
    pictures = sorted(p.name for p in result.run_dir.glob("reconstructions*.png"))
    assert pictures == ["reconstructions-epoch002.png", "reconstructions.png"]
    snapshot = Image.open(result.run_dir / "reconstructions-epoch002.png")
    assert snapshot.size == Image.open(result.run_dir / "reconstructions.png").size
    assert snapshot.height >= 2 * 96  # two rows of tiles enlarged to be judged by eye
