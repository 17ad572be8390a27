"""A search whose every trial was pruned or failed ends with exit status 3 and one line saying why; a study that
has a complete trial, from this run or an earlier one, does not."""

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tests.tune.test_cli_search import _space_file
from vqtune.cli import NONE_COMPLETED, main
from vqtune.tune._runner import none_completed


def test_every_trial_pruned_exits_3_and_a_continued_study_with_a_complete_trial_exits_0(
        ray_session, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    space = _space_file(tmp_path, base={"data": {"source": "skimage-photos", "resolution": 16, "crops_per_image": 8},
                                        "model": {"hidden": 8, "residual_hidden": 4, "residual_blocks": 1,
                                                  "embedding_dim": 4, "codebook_size": 16},
                                        "quantizer": {"dead_code_steps": 5}, "optim": {"batch_size": 16}})
    # no codebook of 16 codes reaches a perplexity of 16: every trial is pruned for collapse at its epoch 2 of 3
    collapse = ["--set", "perplexity.floor=1.0", "--set", "perplexity.warmup_epochs=1", "--set", "base.optim.epochs=3"]
    assert main(["run", str(space), "--storage", url, *collapse]) == NONE_COMPLETED == 3
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == ("vqtune: 2 of 2 trials pruned: 2 codebook collapse (perplexity); see "
                                             f"vqtune trials --study cli --storage '{url}'")
    assert "study cli in" in captured.out and "2 pruned" in captured.out  # the summary still comes

    # continued with the rule off, the study gets a complete trial: it has an answer again
    assert main(["run", str(space), "--storage", url, "--n-trials", "3", "--set", "perplexity.floor=0",
                 "--set", "base.optim.epochs=1"]) == 0
    assert "best: trial 2" in capsys.readouterr().out


def _study(tmp_path, trials) -> optuna.Study:
    tmp_path.mkdir()
    study = optuna.create_study(study_name="ended", storage=f"sqlite:///{tmp_path / 'ended.db'}")
    for state, attrs in trials:
        study.add_trial(create_trial(
            state=state, params={"optim.lr": 1e-3}, distributions={"optim.lr": FloatDistribution(1e-4, 1e-2)},
            value=0.1 if state == TrialState.COMPLETE else None,
            intermediate_values={1: 0.2} if state == TrialState.PRUNED else {}, user_attrs=attrs))
    return study


NAN = "epoch 2: training loss became nan; lower optim.lr (now 0.003)\ndetail on a second line"


def test_the_line_says_which_rule_pruned_and_why_trials_failed(tmp_path):
    pruned_by = [{"pruned_by": rule} for rule in ("perplexity", "pruner", "perplexity", "recon_loss",
                                                  "perplexity", "perplexity")]
    assert none_completed(_study(tmp_path / "p", [(TrialState.PRUNED, a) for a in pruned_by])) == \
        "6 of 6 trials pruned: 4 codebook collapse (perplexity), 2 by the pruner"  # recon_loss: vqtune 0.1's name

    failed = [(TrialState.FAIL, {"fail_reason": NAN}), (TrialState.FAIL, {"fail_reason": NAN}),
              (TrialState.FAIL, {"fail_reason": "RuntimeError: boom"})]
    assert none_completed(_study(tmp_path / "f", failed)) == \
        "3 of 3 trials failed: epoch 2: training loss became nan; lower optim.lr (now 0.003) (2 of them)"

    # a trial failed by a killed run and queued again counts by its rerun (trial 2, pruned)
    rerun = [(TrialState.FAIL, {"fail_reason": "its search stopped"}), (TrialState.PRUNED, {"pruned_by": "pruner"}),
             (TrialState.PRUNED, {"pruned_by": "pruner", "retry_of": 0}), (TrialState.FAIL, {"fail_reason": NAN})]
    assert none_completed(_study(tmp_path / "r", rerun)) == (
        "none of 3 trials completed: 2 pruned: 2 by the pruner; 1 failed: epoch 2: training loss became nan; "
        "lower optim.lr (now 0.003)")

    assert none_completed(_study(tmp_path / "c", [(TrialState.COMPLETE, {}), *failed])) is None
