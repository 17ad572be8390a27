"""``vqtune delete``: a study, its trials' run directories and its artifacts, and nothing else.

What goes is decided first (:func:`plan_deletion`, which writes nothing), shown, confirmed, then removed
(:meth:`Deletion.carry_out`). A database is not trusted with the file system: only a directory that a trial of
the study recorded as its ``run_dir`` *and* that is that trial's own place is removed, a real directory
``trial_dir/STUDY/storage-DIGEST/trial-NNNN`` (see :func:`trial_root`; ``trial-NNNN-K`` for a fresh directory
beside a used one) or, as vqtune laid runs out before, ``trial_dir/STUDY/trial-NNNN`` (only under a trial_dir
the command chose: such a directory is tied to no storage), with NNNN the trial's own number, reached without a
symbolic link or ``..``; Ray's ``ray/`` beside them goes with them. Artifacts are removed by the ids Optuna gave
them, only inside the artifact store this command resolves itself, never one a study names. Another study's
directories and artifacts, another storage's, and anything else a user keeps there are left alone.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from vqtune.config import SearchSpace, Storage
from vqtune.errors import ArtifactError, StudyError
from vqtune.study._artifacts import ArtifactStore, default_artifact_dir
from vqtune.study._storage import is_sqlite, mask, open_storage
from vqtune.study._attrs import RUN_DIR_ATTR, SPACE_ATTR
from vqtune.study._study import live_trials, load_existing

RAY_DIR = "ray"  # the runner's Ray Tune storage_path under the study's trial root
STORAGE_PREFIX = "storage-"  # trial_dir/STUDY/storage-DIGEST: one storage's runs of the study
ARTIFACTS_PREFIX = "artifacts:"  # Optuna's system attribute of an uploaded artifact: artifacts:ID -> its meta
RUN_DIR = re.compile(r"trial-\d{4,}(-\d+)?")  # a trial's run directory, or a fresh one beside it


def trial_root(trial_dir: Path, study: str, storage_url: str) -> Path:
    """Where the run directories of study ``study`` of the storage at ``storage_url`` go:
    ``trial_dir/STUDY/storage-DIGEST``, DIGEST the first 8 hex digits of the SHA-256 of the storage URL (its
    password masked, a SQLite file's path made absolute). Two storages that share a trial_dir and a study name
    keep their runs apart, and ``tensorboard --logdir trial_dir/STUDY`` still finds every run of the study."""
    if is_sqlite(storage_url):
        url = make_url(storage_url)
        storage_url = url.set(database=str(Path(url.database).resolve())).render_as_string(hide_password=False)
    digest = hashlib.sha256(mask(storage_url).encode("utf-8")).hexdigest()[:8]
    return Path(trial_dir) / study / f"{STORAGE_PREFIX}{digest}"


@dataclass
class Deletion:
    """What deleting one study removes; nothing is removed until :meth:`carry_out`."""

    storage_url: str
    study_name: str
    n_trials: int
    trial_dir: Optional[Path]  # the resolved trial_dir the run directories must lie in
    roots: list[Path] = field(default_factory=list)  # the study's directories, deepest first, removed once empty
    directories: list[Path] = field(default_factory=list)
    artifact_dir: Optional[Path] = None
    artifact_ids: list[str] = field(default_factory=list)
    not_own: list[str] = field(default_factory=list)  # recorded run_dirs that exist but are not the study's own
    earlier: list[Path] = field(default_factory=list)  # its own, of the earlier layout, kept: see plan_deletion
    skipped_ids: int = 0  # artifact entries not removed: not an id Optuna gives, or another study's too

    def describe(self) -> str:
        where = f"{len(self.directories)} run directories under {self.trial_dir}" if self.directories else \
            "no run directories"
        files = f"{len(self.artifact_ids)} artifacts in {self.artifact_dir}" if self.artifact_ids else "no artifacts"
        left = []
        if self.not_own:
            left.append(f"{len(self.not_own)} recorded run directories that are not its own under trial_dir "
                        f"{self.trial_dir} (e.g. {self.not_own[0]!r}) are left alone")
        if self.earlier:
            left.append(f"{len(self.earlier)} run directories of the earlier layout (trial_dir/STUDY/trial-NNNN) "
                        "are kept, since only the database names this trial_dir: give --trial-dir with the trial_dir "
                        "of its search to delete them too")
        if self.skipped_ids:
            left.append(f"{self.skipped_ids} artifact entries that are not ids of its own files in the store "
                        "are left alone")
        return (f"study {self.study_name!r} in {mask(self.storage_url)}: {self.n_trials} trials, {where}, {files}"
                + "".join(f"; {line}" for line in left))

    def carry_out(self) -> list[tuple[Path, list[Path]]]:
        """Remove the artifacts, the run directories, then the study itself (last: until then the same command
        can be run again). Returns the study's directories that were kept, each with what it still holds that is
        not the study's own."""
        if self.artifact_ids:
            store = ArtifactStore(self.artifact_dir)
            for artifact_id in self.artifact_ids:
                try:
                    store.remove(artifact_id)
                except ArtifactNotFound:
                    pass
        for directory in self.directories:
            shutil.rmtree(directory)
        kept = []
        for root in self.roots:
            if root.is_dir() and not root.is_symlink():
                held = sorted(root.iterdir())
                if held:
                    kept.append((root, held))
                else:
                    root.rmdir()
        storage = open_storage(Storage(url=self.storage_url), create=False)
        optuna.delete_study(study_name=self.study_name, storage=storage)
        return kept


def plan_deletion(storage_url: str, name: str, artifact_dir: Optional[Path] = None,
                  trial_dir: Optional[Path] = None) -> Deletion:
    """What deleting study ``name`` would remove, or a StudyError when a live run is still using it (a RUNNING
    trial with a fresh heartbeat) or keeps its artifacts in another store than this one. Writes nothing.

    The run directories are those its trials recorded, inside ``trial_dir`` (else the one the study recorded,
    else the schema's default) at the trial's own place; the artifact store is ``artifact_dir``, else the default
    (``artifacts/`` next to a SQLite database, else studies/artifacts), never a directory the study names.
    """
    study = load_existing(open_storage(Storage(url=storage_url), create=False), name, storage_url)
    recorded = study.user_attrs.get(SPACE_ATTR)
    recorded = recorded if isinstance(recorded, dict) else {}
    settings = _recorded_timing(storage_url, recorded)
    if settings is not None:  # judge heartbeats by the study's own settings, as its runs do
        study = optuna.load_study(study_name=name, storage=open_storage(settings, create=False))
    live = live_trials(study, (settings or Storage()).grace_period)
    if live:
        raise StudyError(f"study {name!r} in {mask(storage_url)} is in use by a running search (trials with a fresh "
                         f"heartbeat: {', '.join(map(str, live))}); stop that search first; nothing was deleted")
    trials = study.get_trials(deepcopy=False)
    bound, chosen = _trial_dir(trial_dir, recorded)
    deletion = Deletion(storage_url, name, len(trials), bound)
    if bound is not None:
        _plan_directories(deletion, bound, trials, earlier=chosen)
    _plan_artifacts(deletion, study, trials, artifact_dir, recorded)
    return deletion


def _recorded_timing(storage_url: str, recorded: dict) -> Optional[Storage]:
    """The storage with the heartbeat settings the study's search recorded (None: none, or none valid)."""
    stored = recorded.get("storage")
    timing = {key: value for key, value in stored.items() if key in ("heartbeat_interval", "grace_period")} \
        if isinstance(stored, dict) else {}
    try:
        return Storage(url=storage_url, **timing) if timing else None
    except ValidationError:
        return None


def _trial_dir(given: Optional[Path], recorded: dict) -> tuple[Optional[Path], bool]:
    """The resolved trial_dir: ``given``, else the study's recorded one (an absolute path), else the default; and
    whether this command chose it (given, or the default this command would take) rather than the database."""
    default = Path(SearchSpace.model_fields["trial_dir"].default).resolve()
    if given is not None:
        return Path(given).resolve(), True
    stored = recorded.get("trial_dir")
    if stored is None:
        return default, True
    if isinstance(stored, str) and "\0" not in stored and Path(stored).is_absolute():
        return Path(stored).resolve(), Path(stored).resolve() == default
    return None, False


def _plan_directories(deletion: Deletion, bound: Path, trials: list[optuna.trial.FrozenTrial], earlier: bool) -> None:
    """The study's own run directories under ``bound`` (and Ray's beside them), those its trials recorded that
    are not its own, and the directories to remove once empty.

    A run directory of the earlier layout, ``bound/NAME/trial-NNNN``, is not tied to this storage as
    ``storage-DIGEST`` is: it goes only when ``earlier`` (``bound`` is not the database's word alone), else it is
    kept and counted."""
    name = deletion.study_name
    if name in (".", "..") or "/" in name or "\0" in name:  # a name no directory has (an older vqtune's)
        deletion.not_own = [t.user_attrs[RUN_DIR_ATTR] for t in trials if _exists(t.user_attrs.get(RUN_DIR_ATTR))]
        return
    own = trial_root(bound, name, deletion.storage_url)
    study_dir = bound / name
    for trial in trials:
        recorded = trial.user_attrs.get(RUN_DIR_ATTR)
        path = _own_run_dir(bound, trial.number, recorded)
        if path is not None and path.parent == own:
            deletion.directories.append(path)
        elif path is not None and path.parent == study_dir and earlier:
            deletion.directories.append(path)
        elif path is not None and path.parent == study_dir:
            deletion.earlier.append(path)
        elif _exists(recorded):
            deletion.not_own.append(recorded)
    if not _plain_directory(study_dir, bound):
        return
    if _plain_directory(own, bound):
        if _plain_directory(own / RAY_DIR, bound):
            deletion.directories.append(own / RAY_DIR)
        deletion.roots.append(own)
    # Ray's directory of the earlier layout is shared by every storage whose study of this name used this
    # trial_dir: it goes only with the study's own runs there, once no other trial's run directory is left.
    mine = set(deletion.directories)
    legacy = [p for p in mine if p.parent == study_dir]
    others = [p for p in study_dir.iterdir() if RUN_DIR.fullmatch(p.name) and p not in mine]
    if legacy and not others and _plain_directory(study_dir / RAY_DIR, bound):
        deletion.directories.append(study_dir / RAY_DIR)
    deletion.roots.append(study_dir)


def _own_run_dir(bound: Path, number: int, recorded) -> Optional[Path]:
    """``recorded``, the run_dir trial ``number`` recorded, when it is a directory of that trial's name
    (``trial-NNNN``, or ``trial-NNNN-K`` beside a used one) under ``bound``, reached without ``..`` or a symbolic
    link; else None."""
    if not isinstance(recorded, str) or not recorded or "\0" in recorded:
        return None
    path = Path(recorded)
    if not path.is_absolute() or ".." in path.parts or path.resolve() != path or not _plain_directory(path, bound):
        return None
    return path if re.fullmatch(rf"trial-{number:04d}(-\d+)?", path.name) else None


def _exists(recorded) -> bool:
    return isinstance(recorded, str) and recorded != "" and Path(recorded).exists()


def _plain_directory(path: Path, bound: Path) -> bool:
    """``path`` is a directory inside ``bound`` whose every part below ``bound`` is a real directory."""
    try:
        relative = path.relative_to(bound)
    except ValueError:
        return False
    if not relative.parts or ".." in relative.parts:
        return False
    current = bound
    for part in relative.parts:
        current = current / part
        if current.is_symlink() or not current.is_dir():
            return False
    return True


def _plan_artifacts(deletion: Deletion, study: optuna.Study, trials: list[optuna.trial.FrozenTrial],
                    artifact_dir: Optional[Path], recorded: dict) -> None:
    """The study's artifacts in the store this command resolves: the ids Optuna gave its uploads (UUIDs) that no
    other study of the storage names too. A StudyError when they are missing there but lie in the store the
    study recorded (give --artifact-dir then), so that none is orphaned by mistake."""
    store_dir = Path(artifact_dir).resolve() if artifact_dir is not None else default_artifact_dir(deletion.storage_url)
    storage = study._storage
    ids, odd = _artifact_ids([storage.get_study_system_attrs(study._study_id), *(t.system_attrs for t in trials)])
    others: set[str] = set()
    for other in storage.get_all_studies():
        if other._study_id != study._study_id:
            attrs = [storage.get_study_system_attrs(other._study_id),
                     *(t.system_attrs for t in storage.get_all_trials(other._study_id, deepcopy=False))]
            others.update(_artifact_ids(attrs)[0])
    store, present, missing = ArtifactStore(store_dir), [], []
    for artifact_id in ids:
        try:
            store._inside(artifact_id)  # a link in the store to a file outside it is never followed
        except ArtifactError:
            odd += 1
            continue
        if artifact_id in others:
            odd += 1
        else:
            (present if (store.root / artifact_id).is_file() else missing).append(artifact_id)
    elsewhere = recorded.get("artifact_dir")
    if missing and artifact_dir is None and isinstance(elsewhere, str) and Path(elsewhere).is_absolute() \
            and Path(elsewhere).resolve() != store.root:
        other_root = Path(elsewhere).resolve()  # only looked at, to say where the files are
        if any((other_root / artifact_id).is_file() for artifact_id in missing):
            raise StudyError(f"study {deletion.study_name!r} keeps its artifacts in {other_root} (its artifact_dir), "
                             f"not in {store.root}: add --artifact-dir {other_root} to delete them with it; "
                             "nothing was deleted")
    deletion.artifact_dir, deletion.artifact_ids, deletion.skipped_ids = store.root, present, odd


def _artifact_ids(system_attrs: list[dict]) -> tuple[list[str], int]:
    """The artifact ids that study and trial system attributes name, as Optuna writes them (a UUID under the key
    ``artifacts:ID``), and how many entries are something else."""
    ids, odd = [], 0
    for attrs in system_attrs:
        for key, value in attrs.items():
            if not key.startswith(ARTIFACTS_PREFIX):
                continue
            try:
                artifact_id = json.loads(value)["artifact_id"]
                canonical = str(uuid.UUID(artifact_id)) == artifact_id == key[len(ARTIFACTS_PREFIX):]
            except (TypeError, ValueError, KeyError, AttributeError):
                canonical = False
            if canonical:
                ids.append(artifact_id)
            else:
                odd += 1
    return list(dict.fromkeys(ids)), odd
