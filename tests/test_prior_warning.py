"""A prior that does worse than the unigram prior it must beat is said to be so: in the metrics' own words, under
`vqtune trials`, in the report next to the trial, and at the end of `vqtune train`."""

import optuna
from optuna.distributions import FloatDistribution

from tests.test_cli import SMALL, _set
from vqtune.cli import main
from vqtune.metrics import prior_warning


def test_prior_warning_says_by_how_much_and_what_to_change():
    worse = prior_warning({"val_bits_per_dim": 4.71, "val_bits_per_dim_unigram": 4.5, "val_nll": 2.0})
    assert worse == ("the prior is worse than the unigram prior by 0.21 bits/dim (val_bits_per_dim 4.71 against "
                     "val_bits_per_dim_unigram 4.5); train it longer (prior.epochs), make it larger "
                     "(prior.channels, prior.layers) or raise prior.lr")
    assert prior_warning({"val_bits_per_dim": 4.2, "val_bits_per_dim_unigram": 4.5}) is None  # it beats it
    assert prior_warning({"val_bits_per_dim": 4.5, "val_bits_per_dim_unigram": 4.5}) is None
    assert prior_warning({"val_bits_per_dim": 4.7}) is None  # stage 1 alone: no reference to compare with
    assert prior_warning({"val_bits_per_dim": float("nan"), "val_bits_per_dim_unigram": 4.5}) is None


def _study(tmp_path) -> str:
    """A SQLite study: trial 0 whose prior beat the unigram prior, trial 1 that recorded a warning (with text that
    is not HTML), trial 2 of before the attribute, whose final metrics alone show its prior worse, and trial 3,
    pruned, whose prior was worse too."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="priors", storage=url)
    lr = {"prior.lr": FloatDistribution(1e-5, 1e-2, log=True)}
    recorded = "the prior is worse <b>than</b> the unigram & more"
    for value, lr_value, attrs in [
        (4.2, 3e-3, {"val_bits_per_dim": 4.2, "val_bits_per_dim_unigram": 4.5}),
        (4.7, 1e-5, {"val_bits_per_dim": 4.7, "val_bits_per_dim_unigram": 4.5, "prior_warning": recorded}),
        (4.9, 2e-5, {"val_bits_per_dim": 4.9, "val_bits_per_dim_unigram": 4.6}),
    ]:
        study.add_trial(optuna.trial.create_trial(params={"prior.lr": lr_value}, distributions=lr, value=value,
                                                  user_attrs=attrs))
    study.add_trial(optuna.trial.create_trial(
        params={"prior.lr": 1e-5}, distributions=lr, state=optuna.trial.TrialState.PRUNED,
        intermediate_values={1: 5.5}, user_attrs={"val_bits_per_dim": 5.5, "val_bits_per_dim_unigram": 5.0}))
    return url


def test_trials_table_and_report_show_the_warning(tmp_path, capsys):
    url = _study(tmp_path)
    assert main(["trials", "--study", "priors", "--storage", url]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.lstrip().startswith("number"))
    assert "prior" in header.split() and "prior_warning" not in header  # a narrow column, the text below
    rows = {line.split()[0]: line for line in out if line.split() and line.split()[0].isdigit()}
    assert "worse" not in rows["0"] and "worse" in rows["1"] and "worse" in rows["2"]
    assert "worse" in rows["3"]
    assert out[-3:-1] == [
        "trial 1: the prior is worse <b>than</b> the unigram & more",
        "trial 2: the prior is worse than the unigram prior by 0.3 bits/dim (val_bits_per_dim 4.9 against "
        "val_bits_per_dim_unigram 4.6); train it longer (prior.epochs), make it larger (prior.channels, "
        "prior.layers) or raise prior.lr",
    ]
    assert out[-1].startswith("trial 3: the prior is worse than the unigram prior by 0.5 bits/dim")

    report = tmp_path / "report.html"
    assert main(["report", "--study", "priors", "--storage", url, "-o", str(report)]) == 0
    page = report.read_text()
    assert "<b>than</b>" not in page and "the prior is worse &lt;b&gt;than&lt;/b&gt; the unigram &amp; more" in page
    assert page.count('<tr class="prior-warning">') == 3 - 1  # under trials 1 and 2, not under trial 0
    assert '<td colspan="7">trial 2: the prior is worse than the unigram prior by 0.3 bits/dim' in page
    # trial 3, pruned, is not among the best trials: listed below them
    assert '<ul class="prior-warning"><li>trial 3: the prior is worse than the unigram prior by 0.5' in page


def test_train_ends_with_the_warning_when_its_prior_is_too_weak(tmp_path, capsys):
    weak = {"prior.epochs": 1, "prior.lr": 1e-6, "prior.channels": 4, "prior.layers": 1}  # barely trained
    assert main(["train", *_set(SMALL), *_set(weak), "--set", f"run_dir={tmp_path / 'run'}"]) == 0
    out, err = capsys.readouterr()
    assert "bits/dim" in out.splitlines()[-2]  # the prior's done line
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("vqtune: warning: the prior is worse than the unigram prior by ")
    assert last.endswith("; train it longer (prior.epochs), make it larger (prior.channels, prior.layers) or raise "
                         "prior.lr")
