"""The artifact store of a study: Optuna's file-system store, confined to its own directory.

The file-system store names every file by a fresh id inside its directory; an id read back from a study (the
report, the dashboard) that would reach outside that directory, through ``..``, an absolute path or a symbolic
link, is refused. A file is written whole or not at all (a temporary file renamed once complete), and
:meth:`ArtifactStore.upload` records an artifact in the study only once its file is whole: a full disk leaves
neither a file nor an entry that would show as a broken picture.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from sqlalchemy.engine import make_url

from vqtune.errors import ArtifactError
from vqtune.study._storage import is_sqlite


def default_artifact_dir(storage_url: str) -> Path:
    """Where a study's artifacts go unless configured: next to a SQLite file, else studies/artifacts."""
    if is_sqlite(storage_url):
        return Path(make_url(storage_url).database).resolve().parent / "artifacts"
    return Path("studies/artifacts").resolve()


class ArtifactStore(FileSystemArtifactStore):
    """Optuna's file-system store that reads, writes and removes only files inside its directory."""

    def __init__(self, directory: Path):
        self.root = Path(directory).resolve()
        super().__init__(self.root)

    def _inside(self, artifact_id: str) -> str:
        if self.root not in (self.root / artifact_id).resolve().parents:
            raise ArtifactError(f"artifact id {artifact_id!r} names a file outside the artifact store {self.root}; "
                                "refused (ids are file names that Optuna gives inside the store)")
        return artifact_id

    def open_reader(self, artifact_id: str):
        return super().open_reader(self._inside(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        """Write the artifact whole or not at all: a write that fails (no space left) leaves no file behind."""
        target = self.root / self._inside(artifact_id)
        staged = self._stage(content_body)
        try:
            os.replace(staged, target)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise

    def upload(self, trial: optuna.Trial, path: Path) -> str:
        """Upload the file at ``path`` as an artifact of ``trial`` (Optuna's ``upload_artifact``); returns its id.

        Optuna records an artifact in the study before it writes the file, so a failed write would leave an
        entry for a missing or empty file; here the file is copied into the store first and recorded only once
        whole. An OSError (a full disk) leaves the store and the study as they were."""
        with open(path, "rb") as source:
            staged = self._stage(source)
        try:
            return upload_artifact(artifact_store=_Staged(self, staged), file_path=str(path), study_or_trial=trial)
        finally:
            staged.unlink(missing_ok=True)  # still there only if recording it failed

    def _stage(self, content_body: BinaryIO) -> Path:
        """``content_body`` copied, and flushed to disk, into a temporary file of the store."""
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(content_body, out)
                out.flush()
                os.fsync(out.fileno())  # a full disk may show only here (a network file system, say)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def remove(self, artifact_id: str) -> None:
        super().remove(self._inside(artifact_id))


class _Staged:
    """The store as ``upload_artifact`` sees it in :meth:`ArtifactStore.upload`: its write renames the file already
    staged, whole, to the id Optuna has just recorded (a rename needs no space)."""

    def __init__(self, store: ArtifactStore, staged: Path):
        self.store, self.staged = store, staged

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        os.replace(self.staged, self.store.root / self.store._inside(artifact_id))


def artifact_store(directory: Path) -> ArtifactStore:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return ArtifactStore(directory)
