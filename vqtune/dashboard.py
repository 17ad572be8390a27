"""``vqtune dashboard``: optuna-dashboard on a study storage, with the trials' artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from vqtune.config import Storage
from vqtune.study import artifact_store, default_artifact_dir, mask, open_storage


def serve(storage_url: str, host: str = "127.0.0.1", port: int = 8080, artifact_dir: Optional[Path] = None,
          announce=print) -> None:
    """Serve the dashboard until interrupted; binds to ``host`` (loopback unless told otherwise)."""
    import optuna_dashboard

    storage = open_storage(Storage(url=storage_url), create=False)
    directory = Path(artifact_dir) if artifact_dir else default_artifact_dir(storage_url)
    announce(f"optuna-dashboard: http://{host}:{port}/  (storage {mask(storage_url)}, artifacts {directory})")
    optuna_dashboard.run_server(storage, host=host, port=port, artifact_store=artifact_store(directory))
