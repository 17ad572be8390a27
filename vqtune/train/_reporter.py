"""The trainer's only line to the outside world: progress in, a request to stop out."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple


class RunInfo(NamedTuple):
    """What a run is about to do, handed to :meth:`Reporter.on_start`."""

    run_dir: Path
    device: str
    data: str
    parameters: int
    start_epoch: int
    epochs: int  # the number of the stage's last epoch (the stages of one run count on as one sequence)
    steps_per_epoch: int
    stage: str  # "vqvae" or "prior"


class Reporter:
    """Receives a run's progress. Subclass and override what you need; every method defaults to a no-op.

    The search layer supplies one that reports to Optuna and Ray; ``vqtune train`` one that draws a progress bar.

    Example:
        >>> class StopAtTarget(Reporter):
        ...     def report(self, epoch, metrics):
        ...         return metrics["val_recon_mse"] < 0.002   # True asks the trainer to stop
    """

    def on_start(self, info: RunInfo) -> None:
        """Called once per stage, before its first epoch."""

    def on_step(self, epoch: int, step: int) -> None:
        """Called after each training step (``step`` counts from 1 within the epoch)."""

    def wants_snapshot(self, epoch: int) -> bool:
        """Called after each epoch's evaluation, before :meth:`report`; True asks the trainer to write the epoch's
        pictures into the run directory first (stage 1: ``reconstructions-epochNNN.png``)."""
        return False

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Called after each epoch's evaluation; return True to stop the run after this epoch."""
        return False
