"""TensorBoard event files of every trial: Ray's TensorBoard logger, writing each reported metric per epoch.

The files land in each Ray trial's directory under ``trial_dir/STUDY/ray``, so ``tensorboard --logdir
trial_dir/STUDY`` shows every metric of every trial. tensorboardX (which ray[tune] brings) writes them; the
viewer itself is the optional extra ``vqtune[tensorboard]``.
"""

from __future__ import annotations

import importlib.util
import logging

from vqtune.config import SearchSpace

log = logging.getLogger("vqtune.tune")


def tensorboard_callbacks(space: SearchSpace) -> list:
    """Ray's TensorBoard logger when ``space.tensorboard`` is on and tensorboardX is installed; else none."""
    if not space.tensorboard:
        return []
    if importlib.util.find_spec("tensorboardX") is None:
        log.warning("tensorboard: tensorboardX is not installed, so no event files are written; install it "
                    "(pip install tensorboardX) or run with --no-tensorboard")
        return []
    from ray.tune.logger import TBXLoggerCallback

    return [TBXLoggerCallback()]
