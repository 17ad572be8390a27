"""Training loops. Talks to the outside only through a :class:`Reporter`; imports neither Ray nor Optuna."""

from vqtune.train._build import build_model, load_vqvae, resolve_device
from vqtune.train._checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from vqtune.train._fit import FitResult, evaluate, fit_vqvae
from vqtune.train._progress import ProgressReporter
from vqtune.train._reporter import Reporter, RunInfo

__all__ = [
    "CHECKPOINT_FORMAT",
    "FitResult",
    "ProgressReporter",
    "Reporter",
    "RunInfo",
    "build_model",
    "evaluate",
    "fit_vqvae",
    "load_checkpoint",
    "load_vqvae",
    "resolve_device",
    "save_checkpoint",
]
