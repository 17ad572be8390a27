"""``vqtune run``: Ray Tune runs the trials that the Optuna study asks for, until n_trials have finished."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import optuna
import pandas as pd
from ray import tune
from ray.tune.stopper import CombinedStopper, Stopper
from rich.console import Console
from rich.live import Live
from sqlalchemy.engine import make_url

from vqtune.config import PARAM_TYPES, SearchSpace, load_search_space, validate
from vqtune.data import load_images
from vqtune.errors import ConfigError, StorageError
from vqtune.tune._plan import search_warnings
from vqtune.study import (
    FAIL_REASON_ATTR,
    PRUNED_BY_ATTR,
    RETRY_OF_ATTR,
    best_trial,
    best_trials,
    check_search,
    check_storage,
    count_states,
    default_artifact_dir,
    is_sqlite,
    mask,
    open_storage,
    open_study,
    requeue_once,
    trial_root,
    trials_frame,
)
from vqtune.train import encode_dataset
from vqtune.tune._live import LiveView, render
from vqtune.tune._resources import trial_resources
from vqtune.tune._searcher import StudySearcher
from vqtune.tune._tensorboard import tensorboard_callbacks
from vqtune.tune._trial import PRUNED_BY_PERPLEXITY, PRUNED_BY_PRUNER, run_trial

log = logging.getLogger("vqtune.tune")


# What Optuna's ``study.optimize(callbacks=...)`` takes: called with the study and a copy of each finished trial.
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass
class SearchResult:
    """What a search ends with: its study (to read with :func:`vqtune.study.trials_frame`, export, report),
    trials by state, and the best trial or the Pareto front."""

    study: optuna.Study
    storage_url: str  # the password masked
    counts: dict[optuna.trial.TrialState, int]
    best: Optional[optuna.trial.FrozenTrial]  # a single-objective study's best feasible trial
    pareto: list[optuna.trial.FrozenTrial]  # the best trial, or a multi-objective study's Pareto-optimal ones
    interrupted: bool = False  # stopped (Ctrl-C) before n_trials finished; the same command continues it
    # Why no trial of the study has completed, in one line (every one pruned or failed); None when one has.
    # ``vqtune run`` prints it and exits with status 3.
    none_completed: Optional[str] = None

    @property
    def best_params(self) -> Optional[dict]:
        """The best trial's parameters by config key (None in a multi-objective study, or with no best trial)."""
        return None if self.best is None else dict(self.best.params)


def run_study(
    space: Union[SearchSpace, Mapping[str, Any], str, Path],
    *,
    space_file: Optional[Path] = None,
    callbacks: Sequence[TrialCallback] = (),
    address: Optional[str] = None,
    allow_sqlite: bool = False,
    verbose: bool = False,
    console: Optional[Console] = None,
) -> SearchResult:
    """Run the search ``space`` describes and return its study once ``space.n_trials`` trials have finished.

    ``space`` is a search-space YAML file (a path), a dict with the same keys (validated as a file is), or a
    :class:`~vqtune.config.SearchSpace`. Each of ``callbacks`` is called as Optuna's ``study.optimize`` calls
    its own, ``callback(study, frozen_trial)``, in this process after each trial finishes (COMPLETE, PRUNED or
    FAIL), with a copy of that trial; one that raises stops the search (its trials in flight are queued again,
    as after Ctrl-C) and the exception comes out of ``run_study``.

    Running it again with the same study continues it: finished trials stay, trials of a killed run are
    failed and rerun, and no finished trial is repeated. Uses the Ray session already initialised in this
    process, or starts one (local, or the cluster at ``address``). On a cluster of several nodes a SQLite
    storage is refused unless ``allow_sqlite``. While the search runs, what is printed to stdout (Ray's own lines,
    a callback's) goes to stderr.

    >>> result = run_study("search_spaces/quick.yaml")  # doctest: +SKIP
    >>> result.best.number, result.best.value, result.best_params  # doctest: +SKIP
    """
    space, space_file = _search_space(space, space_file)
    console = console or Console(stderr=True)
    check_search(space)  # storage reachable, sampler and pruner options valid: before Ray starts or a study is made
    space = _absolute_paths(space)
    _check_writable(space)
    # A dataset or checkpoint that cannot load fails here, before anything is written to a study; a folder
    # source is decoded (a prior search's codes encoded) once into its cache, which the trials then read.
    if space.base.stages[0] == "prior":
        encode_dataset(space.base.prior.vqvae_checkpoint)
    else:
        load_images(space.base.data)
    ray = start_ray(address, verbose)
    cpu, gpu = _trial_resources(space, ray)
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if nodes > 1 and is_sqlite(space.storage.url) and not allow_sqlite:
        raise ConfigError(
            f"storage {mask(space.storage.url)}: SQLite does not work across the {nodes} hosts of this Ray "
            "cluster; use a PostgreSQL URL (--storage postgresql+psycopg2://...), or --allow-sqlite if every "
            "node shares this file system"
        )
    storage = open_storage(space.storage)
    for warning in search_warnings(space):  # once every check passed: an error stays one line
        console.print(f"vqtune: warning: {warning}", markup=False, highlight=False, soft_wrap=True)  # one line
    verbosity = optuna.logging.get_verbosity()
    if not verbose:  # Optuna's line per created study and told trial would scroll the live view away
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        # Ray prints to stdout from threads of its own (the raylet's line about a worker that died, its tables when
        # verbose): while the search runs, stdout is stderr, and stdout holds only what the caller prints after it
        # (vqtune run --format json: one document)
        with contextlib.redirect_stdout(sys.stderr):
            return _search(space, storage, space_file, cpu, gpu, verbose, console, list(callbacks))
    finally:
        optuna.logging.set_verbosity(verbosity)


def _search_space(space, space_file: Optional[Path]) -> tuple[SearchSpace, Optional[Path]]:
    """``space`` as a SearchSpace, and the file it came from (recorded in the study)."""
    if isinstance(space, SearchSpace):
        return space, space_file
    if isinstance(space, (str, Path)):
        return load_search_space(Path(space)), space_file or Path(space)
    if isinstance(space, Mapping):
        return validate(SearchSpace, space, "search space (dict)", tags=PARAM_TYPES), space_file
    raise TypeError(f"space must be a SearchSpace, a dict or the path of a YAML file, not {type(space).__name__}")


def _search(space: SearchSpace, storage: optuna.storages.BaseStorage, space_file: Optional[Path], cpu: float,
            gpu: float, verbose: bool, console: Console, callbacks: list[TrialCallback]) -> SearchResult:
    """The study's trials as Ray Tune trials, shown live, until ``n_trials`` have finished."""
    study = open_study(space, storage, space_file)
    root = trial_root(space.trial_dir, space.study, space.storage.url)  # trial_dir/STUDY/storage-DIGEST
    searcher = StudySearcher(study, storage, space, space.n_trials, root, artifact_dir_of(space))
    n_trials = searcher.n_trials  # a grid search ends with its last distinct point
    disk_full = _StopWhenDiskFull(study, storage, space)
    told = _TellCallbacks(study, storage, callbacks)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, space=space, study_name=space.study),
        {"cpu": cpu, "gpu": gpu},
    )
    # Transient: the summary the caller prints replaces the live view when the search ends.
    with Live(render(study, space, n_trials), console=console, refresh_per_second=2, transient=True) as live:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher, num_samples=-1, max_concurrent_trials=space.max_concurrent,
                # a worker process runs trial after trial: a new one would import torch and vqtune again
                # (seconds per trial, measured in BENCHMARKS.md)
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=space.study,
                storage_path=str(root / "ray"),
                verbose=2 if verbose else 0,
                # a trial whose worker process dies is run again, from its last epoch checkpoint
                failure_config=tune.FailureConfig(max_failures=space.resources.max_restarts),
                callbacks=[LiveView(study, space, n_trials, live), disk_full, told, *tensorboard_callbacks(space)],
                stop=CombinedStopper(disk_full, told),
            ),
        )
        try:
            tuner.fit()
        except Exception as exc:  # the study's database stopped answering (its server down, its disk full)?
            _raise_if_storage_lost(space, exc)
            raise
        finally:
            try:
                searcher.close()
            except Exception as exc:
                _raise_if_storage_lost(space, exc)
                raise
    if disk_full.error is not None:
        raise disk_full.error
    if told.error is not None:
        raise told.error
    try:
        counts = count_states(study)
        why = none_completed(study)
    except Exception as exc:
        _raise_if_storage_lost(space, exc)
        raise
    # Ray Tune takes Ctrl-C itself and returns from fit: a search short of n_trials that did not stop for its
    # failures was interrupted.
    finished = counts[optuna.trial.TrialState.COMPLETE] + counts[optuna.trial.TrialState.PRUNED]
    interrupted = finished < n_trials and searcher.failures < searcher.max_failures
    return SearchResult(study, mask(space.storage.url), counts, best_trial(study), best_trials(study), interrupted,
                        why)


# How each pruning rule's trials are counted when no trial completed (the user attribute pruned_by).
_PRUNED_BY = {PRUNED_BY_PERPLEXITY: "codebook collapse (perplexity)", PRUNED_BY_PRUNER: "by the pruner"}


def none_completed(study: optuna.Study) -> Optional[str]:
    """Why no trial of ``study`` has completed, in one line; None when one has, or none has finished.

    Every finished trial of the study counts, this run's and earlier runs' (a continued study with a complete
    trial has an answer): the pruned ones by the rule that stopped them, the failed ones by their most common
    ``fail_reason``. A failed trial whose parameters were queued again (its run was killed or interrupted) is
    counted by its rerun instead.

    >>> none_completed(study)  # doctest: +SKIP
    '6 of 6 trials pruned: 4 codebook collapse (perplexity), 2 by the pruner'
    """
    frame = trials_frame(study)  # pruned_by under today's names, for a study of an older vqtune too
    if frame.empty or (frame["state"] == "COMPLETE").any():
        return None
    retried = set(frame[RETRY_OF_ATTR].dropna().astype(int)) if RETRY_OF_ATTR in frame else set()
    pruned = frame[frame["state"] == "PRUNED"]
    failed = frame[(frame["state"] == "FAIL") & ~frame["number"].isin(retried)]
    parts = []  # (how many, what became of them: why)
    if len(pruned):
        rules = pruned.get(PRUNED_BY_ATTR, pd.Series(None, index=pruned.index, dtype=object))
        labels = rules.map(lambda rule: _PRUNED_BY.get(rule, f"by {rule}" if isinstance(rule, str) else "by no "
                                                       "recorded rule")).value_counts()
        parts.append((len(pruned), "pruned: " + ", ".join(f"{n} {label}" for label, n in labels.items())))
    if len(failed):
        reasons = failed.get(FAIL_REASON_ATTR, pd.Series(None, index=failed.index, dtype=object))
        # a reason's first line: the rest is detail (a traceback's, an error's own)
        reasons = reasons.map(lambda r: str(r).strip().splitlines()[0][:200] if isinstance(r, str) and r.strip()
                              else "no reason recorded").value_counts()
        reason, n = reasons.index[0], int(reasons.iloc[0])
        parts.append((len(failed), f"failed: {reason}" + (f" ({n} of them)" if n < len(failed) else "")))
    total = sum(n for n, _ in parts)
    if len(parts) == 1:
        return f"{total} of {total} trial{'s' * (total != 1)} {parts[0][1]}"
    if parts:
        return f"none of {total} trials completed: " + "; ".join(f"{n} {what}" for n, what in parts)
    return None


# What a database that stopped answering, or a full disk, raises somewhere inside a search (sqlalchemy's
# OperationalError, sqlite3's, psycopg2's, OSError ENOSPC); Ray passes some on only as text. The words that say
# what happened come first, the exception classes that may wrap anything last.
_LOST = ("database or disk is full", "No space left on device", "Disk quota exceeded", "disk I/O error",
         "server closed the connection", "terminating connection", "Connection refused", "could not connect",
         "OperationalError", "InterfaceError")
# What a database that stopped accepting writes raises: PostgreSQL in read-only mode (a primary turned standby,
# default_transaction_read_only), a SQLite file or file system made read-only. Looked for before _LOST, whose
# exception classes wrap some of them.
_READ_ONLY = ("read-only transaction", "ReadOnlySqlTransaction", "readonly database", "Read-only file system")
# What a trial that failed for want of disk space (its run directory's, not the database's) says in fail_reason.
_FULL = ("No space left on device", "Disk quota exceeded")


def _raise_if_storage_lost(space: SearchSpace, exc: BaseException) -> None:
    """A StorageError of one line when ``exc`` came from the study's database going away (its server down, its
    disk full) or turning read-only; nothing otherwise."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    texts = [f"{type(e).__name__}: {e}" for e in reversed(chain)]  # the innermost, the driver's own words, first
    read_only = next((marker for marker in _READ_ONLY if any(marker in text for text in texts)), None)
    if read_only is not None:
        reason = next(line.strip() for text in texts for line in text.splitlines() if read_only in line)
        raise StorageError(
            f"storage {mask(space.storage.url)} turned read-only during the search "
            f"({reason.split(f'{mask(space.storage.url)}: ', 1)[-1][:160]}); finished trials are kept: once it "
            "accepts writes again, the same command continues the search") from None
    lost = next((marker for marker in _LOST if any(marker in text for text in texts)), None)
    if lost is None:
        try:  # a search that failed otherwise may still have lost its database: ask it
            check_storage(space.storage)
            return
        except StorageError as problem:
            lost = reason = str(problem).split(": ", 1)[-1]
    else:
        reason = next(line.strip() for text in texts for line in text.splitlines() if lost in line)
        # a worker's own StorageError, passed on by Ray as text, names the storage already
        reason = reason.split(f"{mask(space.storage.url)}: ", 1)[-1]
    raise StorageError(
        f"storage {mask(space.storage.url)} stopped answering during the search ({reason[:160]}); finished trials "
        "are kept: once it answers again (or has space), the same command continues the search") from None


class _StopWhenDiskFull(tune.Callback, Stopper):
    """Ends the search at the first trial that failed because its disk was full: every trial after it would fail
    the same way, each with parameters drawn for nothing. Its parameters are queued again for the next run (once:
    not those of a retry).

    A Ray callback cannot end a search by raising (Ray logs what a callback raises and goes on), so this is also
    the search's stopper: Ray stops every trial once ``stop_all`` says so, and the searcher queues the trials in
    flight again, as after Ctrl-C; the runner then raises :attr:`error`.
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, space: SearchSpace):
        self.study, self.storage, self.space = study, storage, space
        self.error: Optional[StorageError] = None

    def __getstate__(self) -> dict:
        return {}  # Ray pickles callbacks and stoppers with the experiment state; this one holds a storage

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.error is not None:
            return
        frozen = self.storage.get_trial(trial.config["trial_id"])
        reason = str(frozen.user_attrs.get(FAIL_REASON_ATTR, ""))
        if frozen.state != optuna.trial.TrialState.FAIL or not any(marker in reason for marker in _FULL):
            return
        said = requeue_once(self.study, frozen)
        self.error = StorageError(
            f"trial {frozen.number} found no space left on its disk ({reason.splitlines()[0][:160]}; its run "
            f"directory is under trial_dir {self.space.trial_dir}); finished trials are kept and {said}: once "
            "there is space, the same command continues the search")

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.error is not None


class _TellCallbacks(tune.Callback, Stopper):
    """Calls the caller's callbacks with each trial Ray has finished, once the searcher has recorded its end
    state (Ray tells the searcher before its callbacks). An exception a callback raises ends the search through
    the stopper (Ray would only log it) and is raised again by the runner, as ``study.optimize`` would."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, callbacks: list[TrialCallback]):
        self.study, self.storage, self.callbacks = study, storage, callbacks
        self.error: Optional[BaseException] = None

    def __getstate__(self) -> dict:
        return {}  # pickled with the experiment state, like the other callbacks

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.error is not None or not self.callbacks or "trial_id" not in trial.config:
            return
        frozen = self.storage.get_trial(trial.config["trial_id"])
        if not frozen.state.is_finished():
            return
        for callback in self.callbacks:
            try:
                callback(self.study, copy.deepcopy(frozen))
            except Exception as exc:  # noqa: BLE001  (raised again once Ray has stopped)
                self.error = exc
                return

    on_trial_error = on_trial_complete

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.error is not None


def artifact_dir_of(space: SearchSpace) -> Path:
    """``space.artifact_dir``, else ``artifacts/`` next to a SQLite database, else ``studies/artifacts``."""
    if space.artifact_dir is not None:
        return space.artifact_dir.resolve()
    return default_artifact_dir(space.storage.url)


def _check_writable(space: SearchSpace) -> None:
    """Refuse, before Ray starts or a study is made, a search whose files could not be written: the SQLite
    database's directory, the trials' run directories, the artifact store."""
    places = [("trial_dir", space.trial_dir, "--set trial_dir=DIR"),
              ("artifact_dir", artifact_dir_of(space), "--set artifact_dir=DIR")]
    if is_sqlite(space.storage.url):
        database = Path(make_url(space.storage.url).database)
        places.insert(0, (f"storage {mask(space.storage.url)}", database.parent, "--storage sqlite:///DIR/vqtune.db"))
    for key, path, fix in places:
        problem = unwritable(path)
        if problem:
            raise ConfigError(f"{key}: {path} {problem}; choose a place you can write ({fix})")


def unwritable(path: Path) -> Optional[str]:
    """Why a directory could not be created or written at ``path`` (None: it could), without writing anything."""
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot be a directory ({existing} is a file)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "is not writable" if existing == Path(path) else f"cannot be created ({existing} is not writable)"
    return None


def _trial_resources(space: SearchSpace, ray) -> tuple[float, float]:
    """CPUs and GPUs per trial on the nodes of the Ray cluster (:func:`~vqtune.tune._resources.trial_resources`)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    return trial_resources(space, most_cpus, most_gpus, "no Ray node has more than")


def _absolute_paths(space: SearchSpace) -> SearchSpace:
    """Workers may run elsewhere (another directory, another node): every relative path is made absolute."""
    update: dict = {"trial_dir": space.trial_dir.resolve()}
    if is_sqlite(space.storage.url):
        url = make_url(space.storage.url)
        url = url.set(database=str(Path(url.database).resolve()))
        update["storage"] = space.storage.model_copy(update={"url": url.render_as_string(hide_password=False)})
    data, prior = space.base.data, space.base.prior
    base: dict = {"data": data.with_absolute_paths()}
    if prior is not None and prior.vqvae_checkpoint is not None:
        base["prior"] = prior.model_copy(update={"vqvae_checkpoint": prior.vqvae_checkpoint.resolve()})
    update["base"] = space.base.model_copy(update=base)
    return space.model_copy(update=update)


def start_ray(address: Optional[str] = None, verbose: bool = False):
    """The Ray module with a session: the current one, or a new one (local, or the cluster at ``address``;
    quiet unless ``verbose``).

    A local session keeps Ray's token authentication (see :func:`_local_session_token`); a cluster's is Ray's
    own, as ``ray start`` set it up.
    """
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if not verbose:  # Ray's newer console output prints its tables whatever the verbosity
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if not verbose:
        # vqtune records every trial's failure with its reason in the study; Ray's own error logs would repeat
        # them as tracebacks (and, when the database goes away, as hundreds of lines)
        for name in ("ray", "ray.tune", "ray.train"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    if not ray.is_initialized():
        if address is None and not os.environ.get("RAY_ADDRESS"):
            _local_session_token()
        ray.init(
            address=address or os.environ.get("RAY_ADDRESS"),
            include_dashboard=False,
            logging_level=logging.INFO if verbose else logging.ERROR,
            log_to_driver=verbose,
        )
    return ray


def _local_session_token() -> None:
    """Give a local Ray session a token of its own, so that it starts with Ray's token authentication on.

    Ray's servers (the GCS, the raylet, every worker's) listen on all network interfaces, and Ray 2.60 has no
    option to hold them to the loopback interface: without a token, anyone who reaches this machine could run
    code in the search's workers. Ray turns tokens on by default for a session it starts (``RAY_AUTH_MODE``
    unset), and would write a new token to ~/.ray/auth_token, readable by every user; a token in the environment
    that the session's processes inherit (only their owner reads it) is used instead. ``RAY_AUTH_MODE``,
    ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` set by the user, or a token of theirs in ~/.ray/auth_token, are
    kept as they are.
    """
    if any(os.environ.get(name) is not None for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        return
    if not (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
