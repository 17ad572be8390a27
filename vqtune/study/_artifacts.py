"""The artifact store of a study: Optuna's file-system store, confined to its own directory.

The file-system store names every file by a fresh id inside its directory; an id read back from a study (the
report, the dashboard) that would reach outside that directory, through ``..``, an absolute path or a symbolic
link, is refused.
"""

from __future__ import annotations

from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore
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

    def write(self, artifact_id: str, content_body) -> None:
        super().write(self._inside(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        super().remove(self._inside(artifact_id))


def artifact_store(directory: Path) -> ArtifactStore:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return ArtifactStore(directory)
