"""Command line: parse arguments, call one function, turn a VqtuneError into one line and exit status 2.

What the commands print (tables, JSON, CSV) is rendered by :mod:`vqtune._render`."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console

from vqtune import __version__
from vqtune._render import FORMATS, print_frame, print_summary, print_trials_table
from vqtune.config import DEFAULT_STORAGE, SearchSpace, Storage
from vqtune.errors import VqtuneError

# Where a storage URL comes from when --storage is not given (and, for vqtune run, the file names none): an
# environment variable keeps a PostgreSQL password out of command lines (ps, docker-compose's commands).
STORAGE_ENV = "VQTUNE_STORAGE"
STORAGE_HELP = f"study database (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE})"
# Exit statuses besides 0: 2 bad input (a VqtuneError), 130 interrupted, and this one: vqtune run ended with every
# trial of its study pruned or failed, so it has nothing to hand on.
NONE_COMPLETED = 3
ARTIFACT_DIR_HELP = "default: artifacts/ next to a SQLite database, else studies/artifacts"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "run" and getattr(args, "storage", "") is None:
        args.storage = os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    _configure_logging(args.debug)
    try:
        _study_name(args)
        return args.func(args) or 0
    except VqtuneError as exc:
        if args.debug:
            raise
        print(f"vqtune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vqtune: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqtune", description="Hyperparameter search for VQ-VAE image models and their PixelCNN priors."
    )
    parser.add_argument("--version", action="version", version=f"vqtune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    # Every command takes --debug after its name too; SUPPRESS keeps one given before the name.
    common = _option("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
    output = _option("--format", choices=FORMATS, default="table",
                     help="table (default), json (one document) or csv, on stdout")
    # The options several commands share, each declared once (_storage, _study and the parents below).
    storage, study, required_study = _storage(STORAGE_HELP), _study(help="the study"), _study(required=True)
    # report and trials still take the study as their first argument, deprecated
    positional_study = _option("study_positional", nargs="?", metavar="STUDY", help="deprecated: use --study")
    config_file = _option("config", nargs="?", type=Path, help="training config YAML (default: built-in defaults)")
    artifact_dir = _option("--artifact-dir", type=Path, help=ARTIFACT_DIR_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = _adder(commands, common)

    train = add(
        "train", parents=[config_file],
        help="train a VQ-VAE, and its prior with a prior: section (defaults: bundled photos)"
    )
    _overrides(train, "override a config key, e.g. --set model.codebook_size=256 (repeatable)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a run from its last checkpoint (its config.yaml, plus any --set)")
    train.set_defaults(func=_train)

    sample = add("sample", help="decode samples of a run's PixelCNN prior into an image grid")
    sample.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run with a trained prior (prior_best.pt)")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default 64, 8 per row)")
    sample.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1.0)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", default="auto", help="auto, cpu or cuda")
    sample.add_argument("-o", "--output", type=Path, required=True, metavar="PNG")
    sample.set_defaults(func=_sample)

    show = add("config", parents=[config_file], help="print a training config, resolved and commented, as YAML")
    _overrides(show, "override a config key (repeatable)")
    show.set_defaults(func=_config)

    # --storage and --study as for the other commands, but what the search-space file names comes first
    run = add("run", parents=[output, _storage(f"study database (default: the file's storage, else ${STORAGE_ENV}, "
                                               f"else {DEFAULT_STORAGE})"),
                              _study(help="study name (default: the file's)")],
              help="search hyperparameters: Ray Tune trials over an Optuna search space")
    run.add_argument("space", type=Path, help="search-space YAML, e.g. search_spaces/quick.yaml")
    run.add_argument("--n-trials", type=int, metavar="N", help="finished trials to reach (default: the file's)")
    run.add_argument("--address", metavar="RAY_ADDRESS", help="an existing Ray cluster: auto, HOST:PORT or "
                     "ray://HOST:10001 (default: $RAY_ADDRESS, else a local session)")
    run.add_argument("--allow-sqlite", action="store_true", help="use a SQLite storage on a Ray cluster of "
                     "several nodes (only when they all share its file system)")
    _overrides(run, "override a key of the search-space file, e.g. --set base.optim.epochs=3")
    run.add_argument("--verbose", action="store_true", help="show Ray's own tables and logs")
    run.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files (the same as "
                     "--set tensorboard=false)")
    run.add_argument("--dry-run", action="store_true", help="validate the file and print the space, trials, "
                     "resources, study and a time estimate; run and write nothing")
    run.set_defaults(func=_run)

    export = add("export", parents=[required_study, storage],
                 help="write a trial of a study (the best by default) as a train config")
    export.add_argument("--trial", type=int, metavar="N", help="trial number (default: the best complete trial)")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    export.set_defaults(func=_export)

    studies = add("studies", parents=[output, storage], help="list the studies of a storage")
    studies.set_defaults(func=_studies)

    dashboard = add("dashboard", parents=[storage, artifact_dir],
                    help="optuna-dashboard on a storage, with the trials' artifacts")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine "
                           "only; 0.0.0.0 opens it to the network)")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.add_argument("--token", help="the secret the URL must carry (default: $VQTUNE_DASHBOARD_TOKEN, else a "
                           "random one each start; other users can read a command line, not the environment)")
    dashboard.add_argument("--allow-host", dest="allowed_hosts", action="append", default=[], metavar="NAME",
                           help="accept requests for NAME too, e.g. this machine's name with --host 0.0.0.0 "
                           "(repeatable; default: only the bound address, localhost and 127.0.0.1)")
    dashboard.add_argument("--allow-writes", action="store_true", help="let the dashboard change studies: delete, "
                           "rename, tell, notes (default: read-only)")
    dashboard.set_defaults(func=_dashboard)

    report = add("report", parents=[positional_study, study, storage, artifact_dir],
                 help="write a self-contained HTML report of a study (and its table)")
    report.add_argument("-o", "--output", type=Path, required=True, metavar="HTML")
    report.add_argument("--csv", type=Path, metavar="FILE", help="also write the trials table as CSV")
    report.add_argument("--parquet", type=Path, metavar="FILE", help="also write the trials table as Parquet")
    report.set_defaults(func=_report)

    trials = add("trials", parents=[positional_study, output, study, storage],
                 help="list the trials of a study (json, csv: every column)")
    trials.add_argument("--unfinished", action="store_true", help="list instead the parameter sets drawn that no "
                        "trial finished (failed and not queued again, queued, or running), with their trials")
    trials.set_defaults(func=_trials)

    delete = add("delete", parents=[required_study, storage],
                 help="delete a study, its trials' run directories and its artifacts (asks first)")
    delete.add_argument("--artifact-dir", type=Path, help="the artifact store to remove the study's files from "
                        f"({ARTIFACT_DIR_HELP})")
    delete.add_argument("--trial-dir", type=Path, help="the trial_dir its run directories lie in (default: the "
                        "study's recorded trial_dir)")
    delete.add_argument("--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)")
    delete.set_defaults(func=_delete)
    return parser


def _adder(commands, common: argparse.ArgumentParser):
    def add(name: str, *, parents=(), **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common, *parents], **kwargs)
    return add


def _option(*names: str, **kwargs) -> argparse.ArgumentParser:
    """A parent parser (``parents=``) holding one argument, for the commands that share it."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(*names, **kwargs)
    return parent


def _storage(help: str) -> argparse.ArgumentParser:
    """``--storage URL``: where its default comes from is the only thing that differs between commands."""
    return _option("--storage", metavar="URL", help=help)


def _study(**kwargs) -> argparse.ArgumentParser:
    """``--study NAME``: required by some commands, defaulted by the search-space file for ``run``."""
    return _option("--study", metavar="NAME", **kwargs)


def _overrides(command: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable): what it overrides is the command's own."""
    command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _study_name(args: argparse.Namespace) -> None:
    """``--study NAME``; ``report`` and ``trials`` still take the name as their first argument, deprecated."""
    positional = getattr(args, "study_positional", None)
    if positional is not None:
        if args.study is not None and args.study != positional:
            raise VqtuneError(f"two study names: {positional!r} and --study {args.study!r}; give only --study NAME")
        print(f"vqtune: warning: `vqtune {args.command} {positional}` is deprecated; use "
              f"`vqtune {args.command} --study {positional}`", file=sys.stderr)
        args.study = positional
    if hasattr(args, "study_positional") and args.study is None:
        raise VqtuneError(f"vqtune {args.command} needs a study: add --study NAME (`vqtune studies` lists them)")
    if getattr(args, "study", None) is not None:
        _check_study_name(args)


def _check_study_name(args: argparse.Namespace) -> None:
    """A ``--study NAME`` that breaks the schema's rule for names is refused (before anything is opened for
    writing), unless a command that reads or deletes names a study the storage already holds by exactly that
    name: an older vqtune may have stored one."""
    try:
        SearchSpace.check_study_name(args.study)
    except ValueError as exc:
        if args.command != "run":
            import optuna

            from vqtune.study import open_storage

            try:
                stored = optuna.get_all_study_names(open_storage(Storage(url=args.storage), create=False))
            except VqtuneError:  # no storage to hold it: the name is what is wrong
                stored = []
            if args.study in stored:
                return
        raise VqtuneError(f"--study {args.study!r}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    from vqtune.config import load_search_space

    settings = {"storage.url": args.storage, "study": args.study, "n_trials": args.n_trials,
                "tensorboard": False if args.no_tensorboard else None}
    space = load_search_space(args.space, args.overrides, {k: v for k, v in settings.items() if v is not None})
    if args.storage is None and "storage" not in space.model_fields_set and os.environ.get(STORAGE_ENV):
        space = space.model_copy(update={"storage": space.storage.model_copy(update={"url": os.environ[STORAGE_ENV]})})
    if args.dry_run:  # imports no Ray, writes nothing
        from vqtune.tune import dry_run

        dry_run(space, args.space, address=args.address, warn=lambda line: print(f"vqtune: warning: {line}",
                                                                                  file=sys.stderr))
        return 0
    from vqtune.tune import run_study

    # The live view wraps to the terminal (a soft-wrapping console would crop it); the summary goes to stdout.
    console = Console(stderr=True)
    result = run_study(space, space_file=args.space, address=args.address, allow_sqlite=args.allow_sqlite,
                       verbose=args.verbose, console=console)
    summary = _run_summary(space, result)
    print_summary(summary, result, args.format)
    if result.interrupted:
        console.print("interrupted: the trials in flight were stopped and queued again; the same command "
                      "continues the search", soft_wrap=True)
        return 130
    if result.none_completed:  # a search that ran but has nothing to hand on: not bad input (2), not a success
        print(f"vqtune: {result.none_completed}; see {summary['next'][0]}", file=sys.stderr)
        return NONE_COMPLETED
    if not result.pareto:
        console.print(f"no trial completed within the constraints; see `vqtune trials --study "
                      f"{shlex.quote(space.study)}`", soft_wrap=True, markup=False, highlight=False)
    return 0


def _run_summary(space, result) -> dict:
    """What ``vqtune run`` ends with: the study, its storage, trials by state, the best trial (a single-objective
    study) or the Pareto front (a multi-objective one), and the commands to run next."""
    implied = (DEFAULT_STORAGE, os.environ.get(STORAGE_ENV))  # what the next commands find without --storage
    storage = "" if space.storage.url in implied else f" --storage '{result.storage_url}'"
    pick = f" --trial {result.pareto[0].number}" if space.is_multi_objective and result.pareto else ""
    best = result.best
    study, report, exported = (shlex.quote(f"{space.study}{end}") for end in ("", "-report.html", "-best.yaml"))
    return {
        "study": space.study,
        "storage": result.storage_url,
        "metrics": [goal.metric for goal in space.goals],
        "counts": {state.name.lower(): n for state, n in result.counts.items()},
        "interrupted": result.interrupted,
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params},
        "pareto": None if not space.is_multi_objective else [
            {"number": t.number, "values": t.values, "params": t.params} for t in result.pareto],
        "next": [
            f"vqtune trials --study {study}{storage}",
            f"vqtune report --study {study}{storage} -o {report}",
            f"vqtune dashboard{storage}",
            f"vqtune export --study {study}{storage}{pick} -o {exported}",
            f"vqtune train {exported}",
        ] if result.pareto else [f"vqtune trials --study {study}{storage}"],
    }


def _export(args: argparse.Namespace) -> int:
    from vqtune.study import export_config, load_existing, open_storage

    study = load_existing(open_storage(Storage(url=args.storage), create=False), args.study, args.storage)
    trial = export_config(study, args.output, args.trial)
    print(f"wrote {args.output}: trial {trial.number} of study {args.study}; train it with: vqtune train {args.output}")
    return 0


def _studies(args: argparse.Namespace) -> int:
    from vqtune.study import open_storage, studies_table

    print_frame(studies_table(open_storage(Storage(url=args.storage), create=False)), "no studies", args.format)
    return 0


def _trials(args: argparse.Namespace) -> int:
    from vqtune.study import SPACE_ATTR, goal_metrics, load_existing, open_storage, trials_frame

    study = load_existing(open_storage(Storage(url=args.storage), create=False), args.study, args.storage)
    if args.unfinished:
        from vqtune.study import unfinished_params

        print_frame(unfinished_params(study), "no parameters left unfinished: a trial finished each set drawn",
                     args.format)
        return 0
    frame = trials_frame(study)
    if args.format != "table":  # scripts get every column, as report --csv writes them
        print_frame(frame, "no trials", args.format)
        return 0
    recorded = study.user_attrs.get(SPACE_ATTR)
    # A multi-objective study: each objective under its metric's name, and which trials are Pareto-optimal.
    values = goal_metrics(recorded) if recorded and len(study.directions) > 1 else ["value"]
    print_trials_table(frame, study, values, args.study)
    return 0


def _report(args: argparse.Namespace) -> int:
    from vqtune.report import write_report
    from vqtune.study import default_artifact_dir, load_existing, open_storage

    storage = open_storage(Storage(url=args.storage), create=False)
    study = load_existing(storage, args.study, args.storage)
    artifact_dir = args.artifact_dir or default_artifact_dir(args.storage)
    frame = write_report(study, storage, args.output, artifact_dir, storage_url=args.storage)
    written = [str(args.output)]
    if args.csv:
        frame.to_csv(args.csv, index=False)
        written.append(str(args.csv))
    if args.parquet:
        frame.to_parquet(args.parquet, index=False)
        written.append(str(args.parquet))
    print(f"wrote {', '.join(written)}: {len(frame)} trials of study {args.study}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from vqtune.dashboard import serve

    serve(args.storage, host=args.host, port=args.port, artifact_dir=args.artifact_dir, token=args.token,
          allowed_hosts=args.allowed_hosts, allow_writes=args.allow_writes,
          announce=lambda line: print(line, flush=True))
    return 0


def _delete(args: argparse.Namespace) -> int:
    from vqtune.study import plan_deletion

    deletion = plan_deletion(args.storage, args.study, args.artifact_dir, args.trial_dir)
    if not args.yes:
        if not sys.stdin.isatty():
            raise VqtuneError(f"delete study {args.study!r}: stdin is not a terminal to confirm on; add --yes "
                              "to delete without asking (nothing was deleted)")
        print(f"delete {deletion.describe()}?\ntype the study's name to confirm: ", end="", file=sys.stderr,
              flush=True)
        if input().strip() != args.study:
            print("nothing was deleted", file=sys.stderr)
            return 1
    kept = deletion.carry_out()
    print(f"deleted {deletion.describe()}")
    for root, held in kept:
        print(f"kept {root}: it still holds {', '.join(repr(p.name) for p in held[:5])}"
              f"{f' and {len(held) - 5} more' if len(held) > 5 else ''}", file=sys.stderr)
    return 0


def _config(args: argparse.Namespace) -> int:
    from vqtune.config import describe, load_train_config

    print(describe(load_train_config(args.config, args.overrides)), end="")
    return 0


def _train(args: argparse.Namespace) -> int:
    from vqtune import run_dir as rd
    from vqtune.config import load_train_config
    from vqtune.metrics import prior_warning
    from vqtune.train import ProgressReporter, fit

    if args.resume is not None:
        if args.config is not None:
            raise VqtuneError("give either CONFIG or --resume RUN_DIR, not both")
        config = load_train_config(args.resume / rd.CONFIG, [*args.overrides, f"run_dir={args.resume}"])
    else:
        config = load_train_config(args.config, args.overrides)
    with ProgressReporter() as reporter:
        result = fit(config, reporter, resume=args.resume is not None)
    stage1, stage2 = result.stage_history.get("vqvae"), result.stage_history.get("prior")
    if stage1:
        final = result.final  # with a prior: stage 1's figures of the checkpoint stage 2 encoded (best.pt)
        used = f" (epoch {final['vqvae_epoch']}, best.pt)" if stage2 and "vqvae_epoch" in final else ""
        print(f"done: {result.run_dir}  val mse {final['val_recon_mse']:.5f}  psnr {final['val_psnr']:.2f} dB  "
              f"perplexity {final['val_perplexity']:.1f}/{config.codebook_size}{used}")
    if stage2:
        final = stage2[-1]
        print(f"done: {result.run_dir}  prior val nll {final['val_nll']:.4f} nats/latent  "
              f"{final['val_bits_per_dim']:.3f} bits/dim\n"
              f"next: vqtune sample {result.run_dir} -o {result.run_dir / 'samples.png'}", flush=True)
        warning = prior_warning(final)
        if warning:  # last, where it is read: samples from such a prior are worth less than its bits/dim says
            print(f"vqtune: warning: {warning}", file=sys.stderr)
    return 0


def _sample(args: argparse.Namespace) -> int:
    from vqtune.train import sample_images

    grid = sample_images(args.run_dir, n=args.n, temperature=args.temperature, seed=args.seed, device=args.device)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.output)
    print(f"wrote {args.output}: {args.n} samples from {args.run_dir}")
    return 0


def _configure_logging(debug: bool) -> None:
    # One line per message on stderr, like vqtune's errors: stdout holds only what a command was asked to print.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vqtune: %(levelname)s: %(message)s" if not debug else
                                           "vqtune: %(levelname)s: %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])


if __name__ == "__main__":
    sys.exit(main())
