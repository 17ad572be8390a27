"""The epoch loop both stages share: per-epoch seeding, the finite-loss check, the ``last`` checkpoint and an
atomic ``best``, the report and the request to stop. A stage brings its own training pass and evaluation."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Protocol

import torch

from vqtune import run_dir as rd
from vqtune.config import TrainConfig
from vqtune.errors import CheckpointError, TrainingDiverged
from vqtune.train._checkpoint import fields_of, load_checkpoint, save_checkpoint
from vqtune.train._reporter import Reporter, RunInfo


class Stage(Protocol):
    """What :func:`run_epochs` needs of a stage (see ``_vqvae.py`` and ``_prior.py``)."""

    name: str  # "vqvae" or "prior"
    files: rd.StageFiles
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    selects: str  # the validation metric whose lowest value makes the best checkpoint
    label: str  # how its losses are named in errors: "" or "prior "
    section: str  # the config section of its optimizer settings: "optim" or "prior"
    data: str  # what it trains on, in words
    steps: int  # training steps per epoch

    def train_epoch(self, epoch: int, reporter: Reporter) -> tuple[dict, float]:
        """One pass over the training split: its metrics and its mean loss."""

    def evaluate(self) -> dict:
        """Metrics over the whole validation split."""

    def checkpoint_fields(self) -> dict:
        """What the stage's checkpoints hold besides config, epoch, model, optimizer and metrics."""

    def snapshot(self, run_dir: Path, epoch: int) -> None:
        """Write the epoch's pictures into ``run_dir`` (a reporter asked for them)."""


def run_epochs(stage: Stage, config: TrainConfig, reporter: Reporter, run_dir: Path, device: torch.device,
               first: int, last: int, resume: bool, report_again: bool = True) -> tuple[list[dict], bool]:
    """Train ``stage`` for epochs ``first``..``last``; returns every epoch's metrics and whether the reporter
    asked to stop. With ``resume`` and the stage's last checkpoint in ``run_dir``, training continues after the
    epoch it holds (reported again first, unless ``report_again`` is False: a later stage has begun, so it was
    heard), and ends where an uninterrupted run would have."""
    history: list[dict] = []
    start = first
    last_path, best_path = run_dir / stage.files.last, run_dir / stage.files.best
    if resume and last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        with fields_of(last_path):
            weights, optimizer = state["model"], state["optimizer"]
            history, start = list(state["metrics"]), int(state["epoch"]) + 1
        try:
            stage.model.load_state_dict(weights)
            stage.optimizer.load_state_dict(optimizer)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{last_path}: the checkpoint does not fit this config's model ({' '.join(str(exc).split())[:300]}); "
                "resume without changing the model's keys"
            ) from None
    # The checkpoint is the truth: a run killed after writing an epoch's metrics line but before its checkpoint
    # would otherwise list that epoch twice.
    rd.write_metrics(run_dir, stage.files.metrics, history)
    rd.write_config(run_dir, config.model_dump(mode="json"))  # on resume: the config now in force

    reporter.on_start(RunInfo(run_dir, str(device), stage.data, sum(p.numel() for p in stage.model.parameters()),
                              start, last, stage.steps, stage.name))
    # On resume the last finished epoch is reported again: a kill between its checkpoint and its report would
    # otherwise lose it, and the reporter decides on it what it would have decided (a prune, say).
    if history and report_again and reporter.report(int(history[-1]["epoch"]), history[-1]):
        return history, True
    best = min((h[stage.selects] for h in history), default=math.inf)
    lower = f"lower {stage.section}.lr (now {getattr(config, stage.section).lr})"
    for epoch in range(start, last + 1):
        # Seeding per epoch makes a resumed run identical to an uninterrupted one.
        torch.manual_seed(config.seed * 1_000_003 + epoch)
        t0 = time.perf_counter()
        train_metrics, loss = stage.train_epoch(epoch, reporter)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"epoch {epoch}: {stage.label}training loss became {loss}; {lower} or set "
                                   f"{stage.section}.grad_clip", epoch)
        metrics = {"epoch": epoch, **train_metrics, **stage.evaluate()}
        metrics["epoch_seconds"] = time.perf_counter() - t0
        if not math.isfinite(metrics[stage.selects]):
            raise TrainingDiverged(f"epoch {epoch}: {stage.label}validation loss became {metrics[stage.selects]}; "
                                   f"{lower}", epoch)
        history.append(metrics)
        rd.append_metrics(run_dir, stage.files.metrics, metrics)
        save_checkpoint(last_path, config=config.model_dump(mode="json"), epoch=epoch, model=stage.model.state_dict(),
                        optimizer=stage.optimizer.state_dict(), metrics=history, **stage.checkpoint_fields())
        if metrics[stage.selects] < best:
            best = metrics[stage.selects]
            _copy_atomically(last_path, best_path)
        if reporter.wants_snapshot(epoch):
            stage.snapshot(run_dir, epoch)
        if reporter.report(epoch, metrics):
            return history, True
    return history, False


def _copy_atomically(source: Path, target: Path) -> None:
    """A reader of ``target`` sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
