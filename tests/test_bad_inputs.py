"""Bad input as a user meets it, through the real command line: exit status 2, one line on stderr that names
the file, key or path at fault and says what would be valid, and nothing written anywhere (no study database,
no studies/ or runs/ directory, no data cache entry, no output file). Searches are refused before Ray starts."""

from __future__ import annotations

import copy
import hashlib
import io
import shutil
import socket
import sqlite3
import struct
import time
import zlib
from pathlib import Path

import pytest
import torch
import yaml

from tests.data.conftest import photo
from tests.tune.conftest import TINY_BASE
from vqtune.cli import main
from vqtune.config import PARAM_TYPES, SearchSpace, TrainConfig, validate
from vqtune.train import fit

DB = "study.db"
LR = "optim.lr"
CODEBOOK = "model.codebook_size"


def space_dict(tmp: Path) -> dict:
    return {
        "study": "bad",
        "n_trials": 2,
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "storage": f"sqlite:///{tmp / DB}",
        "resources": {"cpu": 1, "gpu": 0},
        "trial_dir": str(tmp / "trials"),
        "base": {**copy.deepcopy(TINY_BASE), "device": "cpu"},
        "space": {
            LR: {"type": "float", "low": 1e-3, "high": 5e-3, "log": True},
            CODEBOOK: {"type": "categorical", "choices": [32, 64]},
        },
    }


def train_dict(tmp: Path) -> dict:
    data = {**copy.deepcopy(TINY_BASE), "device": "cpu", "run_dir": str(tmp / "runs" / "tiny")}
    data["optim"]["epochs"] = 1
    return data


# ------------------------------------------------------------------------------------------ case builders
# Each builder gets the case's working directory (empty, the test's cwd) and returns the argv of vqtune.


def run(edit=None, *args, text=None):
    """``vqtune run space.yaml ARGS`` on a valid search space changed by ``edit`` (or raw ``text``)."""

    def build(ctx):
        data = space_dict(ctx.tmp)
        if edit is not None:
            edit(data)
        (ctx.tmp / "space.yaml").write_text(text if text is not None else yaml.safe_dump(data))
        return ["run", "space.yaml", *args]

    return build


def train(edit=None, *args, text=None, command="train"):
    """``vqtune train train.yaml ARGS`` (or ``vqtune config``) on a tiny valid config changed by ``edit``."""

    def build(ctx):
        data = train_dict(ctx.tmp)
        if edit is not None:
            edit(data)
        (ctx.tmp / "train.yaml").write_text(text if text is not None else yaml.safe_dump(data))
        return [command, "train.yaml", *args]

    return build


def folder_run(make_files):
    """``vqtune run`` on a folder source whose ``images/`` directory ``make_files`` fills (None: no folder)."""

    def edit(data, tmp):
        data["base"]["data"] = {"source": "folder", "path": str(tmp / "images"), "resolution": 16,
                                "crops_per_image": 4, "cache_dir": str(tmp / "cache")}

    def build(ctx):
        if make_files is not None:
            (ctx.tmp / "images").mkdir()
            make_files(ctx.tmp / "images")
        return run(lambda data: edit(data, ctx.tmp))(ctx)

    return build


def corrupt_files(root: Path) -> None:
    (root / "noise.jpg").write_bytes(bytes(range(256)) * 12)
    full = io.BytesIO()
    photo("coffee", 120, 80).save(full, "PNG")
    (root / "truncated.png").write_bytes(full.getvalue()[: len(full.getvalue()) // 3])


def bomb_files(root: Path) -> None:
    photo("astronaut", 64, 64).save(root / "astronaut.png")
    bomb_png(root / "bomb.png")


def bomb_png(path: Path, side: int = 20_000) -> None:
    """A real 1-bit PNG of side x side black pixels (400 megapixels) that takes about 50 KB on disk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = bytes(1 + side // 8)  # filter byte 0, then side/8 bytes of 8 pixels each
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def study_db(ctx, with_study: bool = True) -> str:
    """A real study database in the working directory: the vqtune study ``bad`` with no trials yet."""
    from vqtune.study import open_storage, open_study

    space = validate(SearchSpace, space_dict(ctx.tmp), "space", tags=PARAM_TYPES)
    if with_study:
        open_study(space, open_storage(space.storage), None)
    else:
        import optuna

        optuna.create_study(study_name="plain", storage=open_storage(space.storage))
    return space.storage.url


def with_db(argv, with_study: bool = True):
    """``argv`` (with ``{url}`` in place of the storage URL) against a real study database."""

    def build(ctx):
        url = study_db(ctx, with_study)
        return [arg.format(url=url) for arg in argv]

    return build


def trained(argv, damage):
    """``argv`` (with ``{run}``) on a copy of a real stage-1 run whose checkpoint ``damage(run)`` spoils."""

    def build(ctx):
        run_dir = ctx.tmp / "runs" / "tiny"
        shutil.copytree(ctx.trained_run(), run_dir)
        damage(run_dir)
        return [arg.format(run=run_dir) for arg in argv]

    return build


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def other_format(path: Path) -> None:
    """The checkpoint as a future vqtune would write it: another format number and version."""
    payload = torch.load(path, weights_only=True)
    payload.update(format=2, vqtune_version="9.0.0")
    torch.save(payload, path)


def truncated_prior(run_dir: Path) -> None:
    (run_dir / "prior_best.pt").write_bytes((run_dir / "best.pt").read_bytes()[:1000])


def set_(path: str, value):
    """An edit that sets ``data[a][b]... = value`` for ``path = "a/b/..."`` (space keys hold dots)."""

    def edit(data):
        *parents, last = path.split("/")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


def prior_space(ctx_edit):
    """A search over the prior of a stage-1 checkpoint that ``ctx_edit(run_dir)`` spoils."""

    def build(ctx):
        run_dir = ctx.tmp / "stage1"
        shutil.copytree(ctx.trained_run(), run_dir)
        ctx_edit(run_dir)

        def edit(data):
            data["base"]["prior"] = {"vqvae_checkpoint": str(run_dir / "best.pt"), "epochs": 1}
            data["objective"] = {"metric": "val_nll"}
            data["space"] = {"prior.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}

        return run(edit)(ctx)

    return build


# ------------------------------------------------------------------------------------------------ the cases
# (builder, substrings the one line must hold: the file/key/path at fault, and what would be valid)

VALID_TOP = ("valid keys here: artifact_dir, base, constraints, max_concurrent, n_trials, objective, objectives, "
             "perplexity, pruner")
TWO = [{"metric": "val_recon_mse"}, {"metric": "rate_bits"}]

CASES = [
    # --- the search-space file itself
    pytest.param(run(text="study: bad\nspace: {optim.lr: [1, \n"),
                 ["space.yaml: line 3", "malformed YAML", "fix the YAML syntax"], id="malformed-yaml"),
    pytest.param(run(text="- study\n- space\n"), ["space.yaml", "expected a mapping of keys", "got list"],
                 id="yaml-not-a-mapping"),
    pytest.param(run(set_("studdy", "x")), ["space.yaml: studdy: unknown key", VALID_TOP], id="unknown-top-key"),
    pytest.param(run(set_("base/model/codebok_size", 64)),
                 ["space.yaml: base.model.codebok_size: unknown key", "valid keys here: codebook_size, downsample"],
                 id="unknown-key-in-base-model"),
    pytest.param(run(set_(f"space/{LR}/lw", 1e-4)),
                 [f"space.yaml: space.{LR}.lw: unknown key", "valid keys here: high, log, low, step, type, when"],
                 id="unknown-key-in-space-entry"),
    pytest.param(run(set_("resources/gpus", 1)),
                 ["space.yaml: resources.gpus: unknown key",
                  "valid keys here: cpu, gpu, max_restarts, trials_per_gpu"],
                 id="unknown-key-in-resources"),
    pytest.param(run(set_("storage", {"url": "sqlite:///x.db", "heartbeat": 5})),
                 ["space.yaml: storage.heartbeat: unknown key",
                  "valid keys here: grace_period, heartbeat_interval, url"],
                 id="unknown-key-in-storage"),
    pytest.param(run(set_("sampler/sead", 1)), ["space.yaml: sampler.sead: unknown key", "options, seed, type"],
                 id="unknown-key-in-sampler"),
    pytest.param(run(set_("n_trials", "many")), ["space.yaml: n_trials", "valid integer", "'many'"],
                 id="wrong-type-n-trials"),
    pytest.param(run(set_("base/optim/lr", "fast")), ["space.yaml: base.optim.lr", "valid number", "'fast'"],
                 id="wrong-type-base-lr"),
    pytest.param(run(set_(f"space/{LR}/low", [1])), [f"space.yaml: space.{LR}.low", "valid number"],
                 id="wrong-type-space-low"),
    pytest.param(run(set_("space", [LR])), ["space.yaml: space", "valid dictionary"], id="wrong-type-space"),
    pytest.param(run(set_(f"space/{LR}/type", "uniform")),
                 [f"space.yaml: space.{LR}", "'uniform'", "'int', 'float', 'categorical'"], id="unknown-param-type"),
    pytest.param(run(set_(f"space/{LR}/low", 0.1)), [f"space.yaml: space.{LR}", "low (0.1) must not exceed high"],
                 id="float-low-above-high"),
    pytest.param(run(set_("space/model.hidden", {"type": "int", "low": 32, "high": 8})),
                 ["space.yaml: space.model.hidden", "low (32) must not exceed high (8)"], id="int-low-above-high"),
    pytest.param(run(set_(f"space/{LR}/low", 0)), [f"space.yaml: space.{LR}", "log scale needs low > 0 (got 0"],
                 id="log-scale-low-zero"),
    pytest.param(run(set_("space/model.hidden", {"type": "int", "low": -8, "high": 32, "log": True})),
                 ["space.yaml: space.model.hidden", "log scale needs low > 0 (got -8)"], id="log-scale-low-negative"),
    pytest.param(run(set_("space/model.hidden", {"type": "int", "low": 8, "high": 32, "step": 5})),
                 ["space.yaml: space.model.hidden", "step 5 does not divide high - low = 24"], id="int-step"),
    pytest.param(run(set_("space/quantizer.beta", {"type": "float", "low": 0.1, "high": 1.0, "step": 0.25})),
                 ["space.yaml: space.quantizer.beta", "step 0.25 does not divide high - low"], id="float-step"),
    pytest.param(run(set_(f"space/{CODEBOOK}/choices", [])),
                 [f"space.yaml: space.{CODEBOOK}.choices", "at least 1 item"], id="empty-categorical"),
    pytest.param(run(set_(f"space/{LR}/when", {"model.hidden": [16]})),
                 [f"space.yaml: space.{LR}.when: 'model.hidden' is not a parameter of this space",
                  f"parameters: {CODEBOOK}, {LR}"], id="when-on-unknown-parameter"),
    pytest.param(run(set_("space/model.codebok_size", {"type": "int", "low": 8, "high": 16})),
                 ["space.yaml: space.model.codebok_size: not a training config key",
                  "valid keys: codebook_size, downsample"], id="space-key-not-a-config-key"),
    pytest.param(run(set_("base/data/resolution", 18)),
                 ["space.yaml: base: data.resolution 18x18 is not divisible by 2^model.downsample = 4",
                  "use a multiple of 4"], id="resolution-vs-downsample"),
    pytest.param(run(lambda data: (set_("base/data/resolution", 24)(data),
                                   set_("space/model.downsample", {"type": "int", "low": 1, "high": 4})(data))),
                 ["space.yaml: space.model.downsample = 4 gives an invalid training config",
                  "data.resolution 24x24 is not divisible by 2^model.downsample = 16", "use a multiple of 16"],
                 id="resolution-vs-searched-downsample"),
    pytest.param(run(lambda data: (set_("space/data.resolution", {"type": "categorical", "choices": [32, 36]})(data),
                                   set_("space/model.downsample", {"type": "int", "low": 2, "high": 3})(data))),
                 ["space.yaml: space: data.resolution = 36, model.downsample = 3 together give an invalid training "
                  "config", "data.resolution 36x36 is not divisible by 2^model.downsample = 8",
                  "add when: conditions"], id="invalid-combination"),
    pytest.param(run(set_("n_trials", 0)), ["space.yaml: n_trials", "greater than or equal to 1"], id="n-trials-zero"),
    pytest.param(run(None, "--n-trials", "-3"), ["space.yaml: n_trials", "greater than or equal to 1 (got -3)"],
                 id="n-trials-negative-flag"),
    pytest.param(run(set_("base/optim/epochs", 0)), ["space.yaml: base.optim.epochs", "greater than or equal to 1"],
                 id="epochs-zero"),
    pytest.param(run(set_("base/optim/batch_size", -16)),
                 ["space.yaml: base.optim.batch_size", "greater than or equal to 1 (got -16)"],
                 id="batch-size-negative"),
    pytest.param(run(set_("sampler/type", "bayes")), ["space.yaml: sampler.type", "'tpe', 'random', 'gp'", "'bayes'"],
                 id="unknown-sampler"),
    pytest.param(run(set_("pruner/type", "asha")), ["space.yaml: pruner.type", "'median', 'hyperband'", "'asha'"],
                 id="unknown-pruner"),
    pytest.param(run(set_("sampler/options", {"n_startup": 3})),
                 ["sampler.options", "n_startup", "keyword arguments of the random sampler"],
                 id="unknown-sampler-option"),
    pytest.param(run(set_("pruner", {"type": "median", "options": {"n_warmup_steps": -1}})),
                 ["pruner.options", "n_warmup_steps", "keyword arguments of the median pruner"],
                 id="bad-pruner-option"),
    # --- objectives and constraints
    pytest.param(run(set_("objectives", [{"metric": "val_recon_mse"}])),
                 ["space.yaml: objectives", "at least 2 items"], id="objectives-one-in-a-list"),
    pytest.param(run(set_("objectives", [{"metric": "val_recon_mse"}, {"metric": "accuracy"}])),
                 ["space.yaml: objectives.1.metric", "'val_recon_mse'", "'accuracy'"], id="objectives-unknown-metric"),
    pytest.param(run(set_("objectives", [{"metric": "val_recon_mse"}, {"metric": "val_recon_mse"}])),
                 ["space.yaml: objectives: val_recon_mse, val_recon_mse names a metric twice"],
                 id="objectives-twice-the-same"),
    pytest.param(run(lambda data: (set_("objectives", TWO)(data), set_("objective", {"metric": "val_psnr"})(data))),
                 ["space.yaml: objective: give objective (one metric) or objectives (2 or 3), not both"],
                 id="objective-and-objectives"),
    pytest.param(run(set_("objectives", [{"metric": "val_recon_mse"}, {"metric": "val_nll"}])),
                 ["space.yaml: objectives.1.metric: val_nll is not reported at the end of a VQ-VAE search",
                  "needs a base.prior section", "use one of val_recon_mse"], id="objectives-metric-of-the-prior"),
    pytest.param(run(lambda data: (set_("objectives", TWO)(data), set_("sampler/type", "cmaes")(data))),
                 ["space.yaml: sampler.type: cmaes optimizes one objective", "nsga2"], id="objectives-with-cmaes"),
    pytest.param(run(lambda data: (set_("objectives", TWO)(data), set_("pruner/type", "median")(data))),
                 ["space.yaml: pruner.type: median prunes on one objective", "use pareto or none"],
                 id="objectives-with-median-pruner"),
    pytest.param(run(lambda data: (set_("objectives", TWO)(data),
                                   set_("pruner", {"type": "pareto", "options": {"quantile": 0.5}})(data))),
                 ["pruner.options", "quantile", "n_startup_trials, n_warmup_steps, fraction"],
                 id="pareto-pruner-bad-option"),
    pytest.param(run(set_("constraints", ["rate_bits < 4096"])),
                 ["space.yaml: constraints.0", "'rate_bits < 4096' is not a bound", "METRIC <= NUMBER"],
                 id="constraint-malformed"),
    pytest.param(run(set_("constraints", ["bitrate <= 4096"])),
                 ["space.yaml: constraints.0.metric", "'bitrate' is not a metric vqtune reports"],
                 id="constraint-unknown-metric"),
    pytest.param(run(set_("constraints", ["rate_bits <= 4096", "sample_seconds <= 30"])),
                 ["space.yaml: constraints.1: sample_seconds <= 30 bounds sample_seconds, which the trials of this "
                  "search never report"], id="constraint-on-a-metric-the-stage-never-reports"),
    # --- places that cannot be written: refused before Ray starts or a study is made
    pytest.param(lambda ctx: ((ctx.tmp / "blocked").write_text("a file"),
                              run(set_("trial_dir", str(ctx.tmp / "blocked" / "trials")))(ctx))[1],
                 ["trial_dir: {tmp}/blocked/trials cannot be a directory ({tmp}/blocked is a file)",
                  "choose a place you can write"], id="trial-dir-unwritable"),
    pytest.param(lambda ctx: ((ctx.tmp / "blocked").write_text("a file"),
                              run(set_("storage", f"sqlite:///{ctx.tmp / 'blocked' / 'study.db'}"))(ctx))[1],
                 ["storage sqlite:///{tmp}/blocked/study.db: {tmp}/blocked cannot be a directory",
                  "--storage sqlite:///DIR/vqtune.db"], id="study-dir-unwritable"),
    # --- storage
    pytest.param(run(None, "--storage", "studies.db"),
                 ["storage 'studies.db': not a database URL", "use e.g. sqlite:///studies/vqtune.db"],
                 id="storage-not-a-url"),
    pytest.param(run(None, "--storage", "postgresql+psycopg2://vq:s3cret@127.0.0.1:port/vq"),
                 ["storage 'postgresql+psycopg2://vq:***@127.0.0.1:port/vq': not a database URL",
                  "postgresql+psycopg2://user:password@host:5432/db"], id="storage-malformed-with-password"),
    pytest.param(run(None, "--storage", "sqlite://"), ["storage sqlite://", "in-memory", "name a file"],
                 id="storage-in-memory"),
    pytest.param(run(None, "--storage", "postgresql://vq:s3cret@127.0.0.1/vq"),
                 ["storage postgresql://vq:***@127.0.0.1/vq", "no driver for postgresql installed", "psycopg",
                  "install it or use", "postgresql+psycopg2://"],
                 id="storage-without-driver"),
    pytest.param(lambda ctx: run(None, "--storage", f"postgresql+psycopg2://vq:s3cret@127.0.0.1:{closed_port()}/vq")(
                     ctx),
                 ["storage postgresql+psycopg2://vq:***@127.0.0.1:", "cannot connect", "Connection refused",
                  "check that the server runs"], id="storage-unreachable"),
    pytest.param(lambda ctx: ((ctx.tmp / "damaged.sqlite").write_bytes(bytes(range(256)) * 16),
                              run(set_("storage", f"sqlite:///{ctx.tmp / 'damaged.sqlite'}"))(ctx))[1],
                 ["storage sqlite:///{tmp}/damaged.sqlite: {tmp}/damaged.sqlite is not a SQLite database",
                  "move it away or give another --storage"], id="storage-damaged-sqlite-file"),
    pytest.param(lambda ctx: (sqlite3.connect(ctx.tmp / "app.db").execute("CREATE TABLE users (id INTEGER)"),
                              run(set_("storage", f"sqlite:///{ctx.tmp / 'app.db'}"))(ctx))[1],
                 ["storage sqlite:///{tmp}/app.db: {tmp}/app.db is another program's database (tables users)",
                  "give a new file for the studies"], id="storage-another-programs-database"),
    pytest.param(run(set_("storage", {"url": "sqlite:///x.db", "heartbeat_interval": 40})),
                 ["space.yaml: storage", "grace_period (60 s) must be at least twice storage.heartbeat_interval"],
                 id="storage-grace-period"),
    # --- the dataset folder
    pytest.param(folder_run(None), ["data.path: {tmp}/images is not a directory", "set data.path to a directory"],
                 id="dataset-folder-missing"),
    pytest.param(folder_run(lambda root: None), ["data.path: no readable image under {tmp}/images",
                                                 "accepted extensions: .bmp .jpeg .jpg .png .webp"],
                 id="dataset-folder-empty"),
    pytest.param(folder_run(corrupt_files), ["data.path: no readable image under {tmp}/images", "skipped 2",
                                             "accepted extensions"], id="dataset-folder-all-corrupt"),
    pytest.param(folder_run(bomb_files), ["{tmp}/images/bomb.png", "decompression bomb", "MAX_IMAGE_PIXELS",
                                          "Remove the file"], id="dataset-decompression-bomb"),
    # --- --set
    pytest.param(run(None, "--set", "base.model.codebok_size=3"),
                 ["--set base.model.codebok_size: unknown key 'codebok_size' in base.model",
                  "valid keys: codebook_size, downsample"], id="set-unknown-key"),
    pytest.param(run(None, "--set", "base.optim.epochs=abc"),
                 ["--set base.optim.epochs=abc", "base.optim.epochs", "valid integer"], id="set-bad-value"),
    pytest.param(run(None, "--set", "base.optim.epochs"), ["--set 'base.optim.epochs'", "expected KEY=VALUE"],
                 id="set-without-value"),
    pytest.param(train(None, "--set", "optim.batch_size=0"),
                 ["--set optim.batch_size=0", "optim.batch_size", "greater than or equal to 1"],
                 id="train-set-batch-size-zero"),
    pytest.param(train(None, "--set", "optim.epocs=3", command="config"),
                 ["--set optim.epocs: unknown key 'epocs' in optim", "valid keys: batch_size, epochs"],
                 id="config-set-unknown-key"),
    # --- training configs
    pytest.param(train(text="model:\n  hidden: 16\n codebook_size: 8\n"),
                 ["train.yaml: line 3", "malformed YAML", "fix the YAML syntax"], id="train-malformed-yaml"),
    pytest.param(train(set_("quantizer/betta", 0.5)),
                 ["train.yaml: quantizer.betta: unknown key", "valid keys here: beta, codebook_dim, dead_code_steps"],
                 id="train-unknown-key"),
    pytest.param(train(set_("optim/epochs", 0)), ["train.yaml: optim.epochs", "greater than or equal to 1"],
                 id="train-epochs-zero"),
    pytest.param(train(set_("data/resolution", [16, 18])),
                 ["train.yaml: data.resolution 16x18 is not divisible by 2^model.downsample = 4"],
                 id="train-resolution-vs-downsample"),
    pytest.param(train(set_("device", "tpu"), command="config"), ["train.yaml: device", "auto, cpu, cuda or cuda:N"],
                 id="config-unknown-device"),
    # --- checkpoints
    pytest.param(trained(["train", "--resume", "{run}"], lambda run: truncate(run / "last.pt")),
                 ["{tmp}/runs/tiny/last.pt: not a readable vqtune checkpoint", "truncated",
                  "use another checkpoint of the run"], id="resume-truncated-checkpoint"),
    pytest.param(trained(["train", "--resume", "{run}"], lambda run: other_format(run / "last.pt")),
                 ["{tmp}/runs/tiny/last.pt: checkpoint format 2 written by vqtune 9.0.0",
                  "load it with that vqtune version or retrain"], id="resume-checkpoint-of-another-version"),
    pytest.param(trained(["sample", "{run}", "-o", "samples.png"], truncated_prior),
                 ["{tmp}/runs/tiny/prior_best.pt: not a readable vqtune checkpoint", "use another checkpoint"],
                 id="sample-truncated-checkpoint"),
    pytest.param(trained(["sample", "{run}", "-o", "samples.png"], lambda run: None),
                 ["{tmp}/runs/tiny: no prior_best.pt here", "train a prior first"], id="sample-without-prior"),
    pytest.param(prior_space(lambda run: truncate(run / "best.pt")),
                 ["{tmp}/stage1/best.pt: not a readable vqtune checkpoint"], id="prior-search-truncated-checkpoint"),
    # --- export, trials, report, studies
    pytest.param(with_db(["export", "--study", "nope", "--storage", "{url}", "-o", "best.yaml"]),
                 ["no study 'nope' in sqlite:///{tmp}/study.db", "studies there: bad"], id="export-unknown-study"),
    pytest.param(with_db(["export", "--study", "bad", "--storage", "{url}", "-o", "best.yaml"]),
                 ["study 'bad' has no complete trial yet", "run the search further"], id="export-empty-study"),
    pytest.param(with_db(["export", "--study", "bad", "--storage", "{url}", "--trial", "3", "-o", "best.yaml"]),
                 ["study 'bad' has no trial 3", "it has no trials yet"], id="export-trial-of-empty-study"),
    pytest.param(with_db(["export", "--study", "plain", "--storage", "{url}", "-o", "best.yaml"], with_study=False),
                 ["study 'plain' was not made by vqtune run", "export a study that vqtune run searched"],
                 id="export-foreign-study"),
    pytest.param(lambda ctx: ["export", "--study", "bad", "--storage", f"sqlite:///{ctx.tmp}/none.db", "-o", "x.yaml"],
                 ["storage sqlite:///{tmp}/none.db: no such database file",
                  "give the --storage of an existing study"], id="export-missing-database"),
    pytest.param(with_db(["report", "--study", "nope", "--storage", "{url}", "-o", "report.html"]),
                 ["no study 'nope'", "studies there: bad"], id="report-unknown-study"),
    pytest.param(with_db(["trials", "--study", "nope", "--storage", "{url}"]),
                 ["no study 'nope'", "studies there: bad"], id="trials-unknown-study"),
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real stage-1 run (one epoch of a tiny VQ-VAE on photo crops) with its checkpoints."""
    config = TrainConfig.model_validate(train_dict(tmp_path_factory.mktemp("trained")))
    config.data.crops_per_image = 8
    return fit(config).run_dir


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with a digest of its content; a SQLite database by its full SQL dump
    (which includes what still sits in its write-ahead log)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        if path.suffix == ".db":
            with sqlite3.connect(path) as connection:
                content = "\n".join(connection.iterdump()).encode()
            connection.close()
        else:
            content = path.read_bytes()
        files[str(path.relative_to(root))] = hashlib.sha256(content).hexdigest()
    return files


class Context:
    def __init__(self, tmp: Path, request):
        self.tmp = tmp
        self._request = request

    def trained_run(self) -> Path:
        return self._request.getfixturevalue("trained_run")


@pytest.mark.parametrize("build, expected", CASES)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(build, expected, tmp_path, monkeypatch, capsys, request):
    import vqtune.tune._runner as runner

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for an input that should have been refused before")

    monkeypatch.setattr(runner, "start_ray", no_ray)
    monkeypatch.chdir(tmp_path)
    argv = build(Context(tmp_path, request))
    before = snapshot(tmp_path)
    capsys.readouterr()

    started = time.monotonic()
    assert main(argv) == 2
    elapsed = time.monotonic() - started

    out = capsys.readouterr()
    line = out.err.strip()
    assert line.startswith("vqtune: error: "), out.err
    for part in expected:
        assert part.format(tmp=tmp_path) in line, line
    assert "s3cret" not in out.err + out.out
    assert elapsed < 5, f"{elapsed:.1f} s to refuse {argv}"
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "studies").exists()
    assert out.err == line + "\n", f"not exactly one line: {out.err!r}"
