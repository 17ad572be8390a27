"""Command line: parse arguments, call one function, turn a VqtuneError into one line and exit status 2."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from vqtune import __version__
from vqtune.errors import VqtuneError


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug)
    try:
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a VQ-VAE from a config file (defaults: bundled photos)")
    train.add_argument("config", nargs="?", type=Path, help="training config YAML (default: built-in defaults)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set model.codebook_size=256 (repeatable)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a run from its last checkpoint (its config.yaml, plus any --set)")
    train.set_defaults(func=_train)

    show = commands.add_parser("config", help="print a training config, resolved and commented, as YAML")
    show.add_argument("config", nargs="?", type=Path, help="training config YAML (default: built-in defaults)")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config key (repeatable)")
    show.set_defaults(func=_config)
    return parser


def _config(args: argparse.Namespace) -> int:
    from vqtune.config import describe, load_train_config

    print(describe(load_train_config(args.config, args.overrides)), end="")
    return 0


def _train(args: argparse.Namespace) -> int:
    from vqtune.config import load_train_config
    from vqtune.train import ProgressReporter, fit_vqvae

    if args.resume is not None:
        if args.config is not None:
            raise VqtuneError("give either CONFIG or --resume RUN_DIR, not both")
        config = load_train_config(args.resume / "config.yaml", [*args.overrides, f"run_dir={args.resume}"])
    else:
        config = load_train_config(args.config, args.overrides)
    with ProgressReporter() as reporter:
        result = fit_vqvae(config, reporter, resume=args.resume is not None)
    final = result.final
    print(
        f"done: {result.run_dir}  val mse {final['val_recon_mse']:.5f}  psnr {final['val_psnr']:.2f} dB  "
        f"perplexity {final['val_perplexity']:.1f}/{config.model.codebook_size}"
    )
    return 0


def _configure_logging(debug: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_time=False, show_path=debug)],
    )


if __name__ == "__main__":
    sys.exit(main())
