"""The reporter of ``vqtune train``: a rich progress bar per epoch and one line of metrics after it."""

from __future__ import annotations

from typing import Mapping, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vqtune.train._reporter import Reporter, RunInfo


class ProgressReporter(Reporter):
    """Use as a context manager around :func:`fit` so the bar is cleaned up on errors too."""

    def __init__(self, console: Optional[Console] = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = None
        self.epochs = 0

    def __enter__(self) -> "ProgressReporter":
        return self

    def __exit__(self, *exc) -> None:
        if self.progress.live.is_started:  # stopping a bar that never started prints an empty line
            self.progress.stop()

    def on_start(self, info: RunInfo) -> None:
        self.epochs = info.epochs
        self.console.print(
            f"[bold]vqtune train[/] {info.stage} -> {info.run_dir}  ({info.device}, "
            f"{info.parameters / 1e6:.2f}M parameters)\n"
            f"  data: {info.data}",
            soft_wrap=True,
        )
        self.progress.start()  # only now: an error while loading data leaves the terminal untouched
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("train", total=info.steps_per_epoch, epoch=info.start_epoch,
                                           epochs=info.epochs)

    def on_step(self, epoch: int, step: int) -> None:
        self.progress.update(self.task, completed=step, epoch=epoch)

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        m = metrics
        if "val_nll" in m:  # stage 2
            line = (f"prior epoch {epoch:>3}/{self.epochs}  nll {m['train_nll']:.4f} train {m['val_nll']:.4f} val"
                    f" (nats/latent)  {m['val_bits_per_dim']:.3f} bits/dim  {m['latents_per_s']:.0f} latents/s")
        else:
            line = (f"epoch {epoch:>3}/{self.epochs}  mse {m['train_recon_mse']:.5f} train {m['val_recon_mse']:.5f} val"
                    f"  psnr {m['val_psnr']:5.2f} dB  perplexity {m['val_perplexity']:6.1f}"
                    f"  {m['val_active_codes']} codes used ({m['val_usage']:.0%})"
                    f"  {m['train_images_per_s']:.0f} img/s")
        self.console.print(line, soft_wrap=True)
        self.progress.reset(self.task, epoch=min(epoch + 1, self.epochs), epochs=self.epochs)
        return False
