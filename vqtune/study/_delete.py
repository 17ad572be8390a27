"""``vqtune delete``: a study, its trials' run directories and its artifacts, and nothing else.

What goes is decided first (:func:`plan_deletion`, which writes nothing), shown, confirmed, then removed
(:meth:`Deletion.carry_out`). Only paths that are the study's own are ever removed: the run directories its
trials were given under ``trial_dir/STUDY`` (``trial-NNNN``, ``trial-NNNN-2``, ... and Ray's ``ray/``), and the
artifact files its trials uploaded, by id, inside the artifact store. Another study's directories, another
study's artifacts and anything else a user keeps there are left alone.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import optuna
from optuna.artifacts import get_all_artifact_meta
from optuna.artifacts.exceptions import ArtifactNotFound

from vqtune.config import Storage
from vqtune.errors import StudyError
from vqtune.study._artifacts import ArtifactStore, default_artifact_dir
from vqtune.study._storage import mask, open_storage
from vqtune.study._study import SPACE_ATTR, live_trials, load_existing

RAY_DIR = "ray"  # the runner's Ray Tune storage_path under the study's trial root


@dataclass
class Deletion:
    """What deleting one study removes; nothing is removed until :meth:`carry_out`."""

    storage_url: str
    study_name: str
    n_trials: int
    trial_root: Optional[Path]  # trial_dir/STUDY, removed once empty
    directories: list[Path] = field(default_factory=list)
    artifact_dir: Optional[Path] = None
    artifact_ids: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"{len(self.directories)} run directories under {self.trial_root}" if self.directories else \
            "no run directories"
        files = f"{len(self.artifact_ids)} artifacts in {self.artifact_dir}" if self.artifact_ids else "no artifacts"
        return (f"study {self.study_name!r} in {mask(self.storage_url)}: {self.n_trials} trials, {where}, {files}")

    def carry_out(self) -> list[Path]:
        """Remove the artifacts, the run directories, then the study itself (last: until then the same command
        can be run again). Returns what was left in the trial root because it is not the study's own."""
        if self.artifact_ids:
            store = ArtifactStore(self.artifact_dir)
            for artifact_id in self.artifact_ids:
                try:
                    store.remove(artifact_id)
                except ArtifactNotFound:
                    pass
        for directory in self.directories:
            shutil.rmtree(directory)
        kept: list[Path] = []
        if self.trial_root is not None and self.trial_root.is_dir():
            kept = sorted(self.trial_root.iterdir())
            if not kept:
                self.trial_root.rmdir()
        storage = open_storage(Storage(url=self.storage_url), create=False)
        optuna.delete_study(study_name=self.study_name, storage=storage)
        return kept


def plan_deletion(storage_url: str, name: str, artifact_dir: Optional[Path] = None) -> Deletion:
    """What deleting study ``name`` would remove, or a StudyError when a live run is still using it (a RUNNING
    trial with a fresh heartbeat). Writes nothing.

    The run directories come from the search space the study recorded (its ``trial_dir``); the artifact store
    is ``artifact_dir``, else the recorded one, else the default next to a SQLite database.
    """
    study = load_existing(open_storage(Storage(url=storage_url), create=False), name, storage_url)
    recorded = study.user_attrs.get(SPACE_ATTR) or {}
    timing = {key: value for key, value in (recorded.get("storage") or {}).items()
              if key in ("heartbeat_interval", "grace_period")}
    if timing:  # judge heartbeats by the study's own settings, as its runs do
        storage = open_storage(Storage(url=storage_url, **timing), create=False)
        study = optuna.load_study(study_name=name, storage=storage)
    live = live_trials(study, timing.get("grace_period", Storage().grace_period))
    if live:
        raise StudyError(f"study {name!r} in {mask(storage_url)} is in use by a running search (trials with a fresh "
                         f"heartbeat: {', '.join(map(str, live))}); stop that search first; nothing was deleted")
    trials = study.get_trials(deepcopy=False)
    root = _trial_root(recorded, name)
    directories = _run_directories(root, trials) if root is not None else []
    store_dir = Path(artifact_dir or recorded.get("artifact_dir") or default_artifact_dir(storage_url)).resolve()
    ids = [meta.artifact_id for meta in get_all_artifact_meta(study)]
    for trial in trials:
        ids += [meta.artifact_id for meta in get_all_artifact_meta(trial, storage=study._storage)]
    store = ArtifactStore(store_dir)
    for artifact_id in ids:
        store._inside(artifact_id)  # an id that would reach outside the store is refused before anything goes
    return Deletion(storage_url, name, len(trials), root, directories, store_dir, ids)


def _trial_root(recorded: dict, name: str) -> Optional[Path]:
    """``trial_dir/STUDY`` as the study's runs used it, or None (no recorded search, or not a directory of the
    study's own: a relative trial_dir, a name that would climb out of it)."""
    trial_dir = recorded.get("trial_dir")
    if not trial_dir or not Path(trial_dir).is_absolute():
        return None
    root = Path(trial_dir) / name
    if root.resolve().parent != Path(trial_dir).resolve() or not root.is_dir():
        return None
    return root


def _run_directories(root: Path, trials: list[optuna.trial.FrozenTrial]) -> list[Path]:
    """The directories under ``root`` that hold this study's trials (each trial's ``trial-NNNN`` and the
    fresh ``trial-NNNN-K`` a rerun got), and Ray's experiment directory."""
    names = {f"trial-{t.number:04d}" for t in trials}
    own = re.compile(r"(trial-\d{4,})(-\d+)?")
    found = []
    for path in sorted(root.iterdir()):
        match = own.fullmatch(path.name)
        if path.is_dir() and not path.is_symlink() and (
                path.name == RAY_DIR or (match is not None and match.group(1) in names)):
            found.append(path)
    return found
