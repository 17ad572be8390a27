"""Errors a user can cause. The CLI prints their message as one line and exits with status 2.

Internal bugs stay ordinary exceptions and keep their tracebacks.
"""


class VqtuneError(Exception):
    """Base class: the message names the file, key or path at fault and what would be valid."""


class ConfigError(VqtuneError):
    """A configuration file or ``--set`` override is malformed or out of range."""


class DataError(VqtuneError):
    """An image source cannot give a dataset (missing folder, no readable image, ...)."""


class CheckpointError(VqtuneError):
    """A checkpoint file is missing, truncated, or from an incompatible format."""


class TrainingDiverged(VqtuneError):
    """The loss became NaN or infinite; training stopped at that epoch."""

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch


class StorageError(VqtuneError):
    """The storage URL is malformed, or its database cannot be reached."""


class StudyError(VqtuneError):
    """A study is missing, empty, or does not match the search asked of it."""


class ArtifactError(VqtuneError):
    """An artifact id that names a file outside the artifact store."""


class DashboardError(VqtuneError):
    """The dashboard cannot start as asked (an empty token, a port already in use)."""
