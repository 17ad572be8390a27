"""``fit``: the one entry point of training. It runs what the config asks, stage 1, stage 2 or both, in one
run directory, as ``vqtune train`` and every search trial do.

The pipeline is the two stages' natural one: fit the VQ-VAE -> encode the dataset into codes -> fit the
prior on them -> sample (``sample_images``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from vqtune import run_dir as rd
from vqtune.config import TrainConfig
from vqtune.data import ImageData, training_data
from vqtune.train._build import resolve_device
from vqtune.train._epochs import run_epochs
from vqtune.train._prior import PriorStage
from vqtune.train._reporter import Reporter
from vqtune.train._vqvae import VQVAEStage


@dataclass
class FitResult:
    """What a finished (or stopped) run leaves: its directory, the model of each stage it trained (``vqvae``,
    ``prior``) and every epoch's metrics, one series across the stages."""

    run_dir: Path
    models: dict[str, torch.nn.Module] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    stage_history: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def model(self) -> torch.nn.Module:
        """The model of the last stage trained."""
        return list(self.models.values())[-1]

    @property
    def final(self) -> dict:
        """The figures of the model this run leaves, each from the stage that made it (:attr:`final_stages`): the
        last epoch's, and in a run of both stages, stage 1's of the epoch whose checkpoint stage 2 encoded
        (``vqvae_epoch``: ``best.pt``), not of stage 1's last epoch, so that ``val_recon_mse``, ``val_code_bits``
        and the parts of ``val_bits_per_dim`` describe one model."""
        return {name: value for figures in self._final_parts().values() for name, value in figures.items()}

    @property
    def final_stages(self) -> dict[str, dict]:
        """Which stage's epoch each figure of :attr:`final` comes from: ``{stage: {"epoch": n, "metrics":
        [names]}}``, the last stage's winning where both report a name."""
        parts = self._final_parts()
        names = {name: stage for stage, figures in parts.items() for name in figures}
        return {stage: {"epoch": int(figures["epoch"]), "metrics": [n for n in figures if names[n] == stage]}
                for stage, figures in parts.items()}

    def _final_parts(self) -> dict[str, dict]:
        parts = {stage: history[-1] for stage, history in self.stage_history.items() if history}
        used = parts.get("prior", {}).get("vqvae_epoch")
        if "vqvae" in parts and used is not None:
            parts["vqvae"] = next((h for h in self.stage_history["vqvae"] if h["epoch"] == used), parts["vqvae"])
        return parts


def fit(
    config: TrainConfig,
    reporter: Optional[Reporter] = None,
    *,
    resume: bool = False,
    data: Optional[ImageData] = None,
) -> FitResult:
    """Train what ``config`` asks (``config.stages``) and return when done or when the reporter asks to stop.

    - stage 1 (``vqvae``): the VQ-VAE on ``config.data``;
    - stage 2 (``prior``): the PixelCNN on the codes of ``config.prior.vqvae_checkpoint``, or, when that is
      unset, of the ``best.pt`` that stage 1 has just written into the same run directory.

    Epochs count on across the stages (stage 2's first follows stage 1's last), so the reporter sees one series
    of ``config.total_epochs`` epochs. With ``resume=True`` and a checkpoint in ``config.run_dir`` the run
    continues after its last finished epoch, in whichever stage that was, and gives the result of an
    uninterrupted run; otherwise a fresh run directory is used. ``data`` may pass already loaded images.
    """
    reporter = reporter or Reporter()
    device = resolve_device(config.device)
    result = FitResult(Path(config.run_dir))
    run_dir = None  # made once the first stage's inputs have loaded: bad data leaves no empty run directory
    first = 1
    for i, name in enumerate(config.stages):
        if name == "vqvae":
            stage = VQVAEStage(config, training_data(config.data, device, data), device)
            last = config.optim.epochs
        else:
            stage = PriorStage(config, config.prior.vqvae_checkpoint or run_dir / rd.VQVAE.best, device)
            last = first + config.prior.epochs - 1
        run_dir = run_dir or rd.open_run_dir(config.run_dir, resume)
        result.run_dir = run_dir
        begun_later = any((run_dir / rd.STAGES[later].last).exists() for later in config.stages[i + 1:])
        history, stopped = run_epochs(stage, config, reporter, run_dir, device, first, last, resume,
                                      report_again=not begun_later)
        stage.finish(run_dir)
        result.models[name] = stage.model
        result.stage_history[name] = history
        result.history += history
        if stopped:
            result.stopped_early = True
            break
        first = last + 1
    return result
