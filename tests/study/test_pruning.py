"""vqtune's pruning rules on a real SQLite study of synthetic two-stage trials: every decision compares one
quantity (stage-1 bounds as intervals, stage-2 values with stage-2 values at the same stage epoch), where
Optuna's median pruner, asked of the same study, compares unlike ones."""

import math

import optuna
import pytest
from optuna.trial import TrialState

from vqtune.config import Constraint, PerplexityRule
from vqtune.study import (BOUNDS_ATTR, BoundsRule, Judged, ParetoRule, codebook_collapsed, objective_bounds, rule_prunes,
                          stage_key, trials_frame, violation_of)

BITS = [("val_bits_per_dim", 1.0)]
STAGE1 = 4  # optim.epochs; prior.epochs is 4 too: the trials' series run 1..8


def _metrics(distortion: float, bits: float) -> dict:
    return {"val_distortion_bits_per_dim": distortion, "val_bits_per_dim": bits}


def two_stage(distortion: list[float], rate: float, prior: list[float]) -> list[dict]:
    """A trial's epochs: stage 1 reports the unigram bound (distortion + the unigram rate), stage 2 the prior's."""
    return ([_metrics(d, d + rate) for d in distortion]
            + [_metrics(distortion[-1], p) for p in prior])


def _records(epochs: list[dict], stage1: int = STAGE1) -> tuple[dict, dict]:
    """Intermediate values and ``objective_bounds`` as a trial of the search records them."""
    values, bounds = {}, {}
    for epoch, metrics in enumerate(epochs, start=1):
        stage = "vqvae" if epoch <= stage1 else "prior"
        values[epoch] = metrics["val_bits_per_dim"]
        bounds[stage_key(stage, epoch, stage1)] = objective_bounds(metrics, BITS, [], stage == "vqvae").to_json()
    return values, bounds


# Two coarse grids (8x8): few code bits, a blurrier decoder; they finished first.
COARSE = [two_stage([7.30, 7.10, 7.00, 6.95], 0.20, [6.90, 6.85, 6.82, 6.80]),
          two_stage([7.35, 7.15, 7.05, 7.00], 0.20, [6.95, 6.90, 6.86, 6.84])]
# A fine grid (16x16): a sharper decoder whose codes cost 1.5 bits/dim under the unigram prior; its PixelCNN
# wins most of them back. Its whole model is the best of the three.
FINE = two_stage([6.60, 6.40, 6.30, 6.25], 1.50, [6.80, 6.70, 6.65, 6.60])


@pytest.fixture
def study(tmp_path):
    study = optuna.create_study(study_name="synthetic", storage=f"sqlite:///{tmp_path}/studies.db")
    for epochs in COARSE:
        values, bounds = _records(epochs)
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, value=values[len(epochs)], intermediate_values=values,
            user_attrs={BOUNDS_ATTR: bounds}, distributions={}, params={}))
    return study


def _run(study, epochs: list[dict], decide, stage1: int = STAGE1):
    """Report ``epochs`` to a new trial, asking ``decide(trial, records, key, epoch)`` after each but the last;
    returns the epoch it was pruned at (the trial told PRUNED) or None (told COMPLETE)."""
    trial = study.ask()
    records = {}
    for epoch, metrics in enumerate(epochs, start=1):
        stage = "vqvae" if epoch <= stage1 else "prior"
        key = stage_key(stage, epoch, stage1)
        records[key] = objective_bounds(metrics, BITS, [], stage == "vqvae").to_json()
        trial.report(metrics["val_bits_per_dim"], epoch)
        trial.set_user_attr(BOUNDS_ATTR, records)
        if epoch < len(epochs) and decide(trial, records, key, epoch):
            study.tell(trial, state=TrialState.PRUNED)
            return epoch
    study.tell(trial, epochs[-1]["val_bits_per_dim"])
    return None


def optuna_median(trial, records, key, epoch):
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    return pruner.prune(trial.study, trial.study._storage.get_trial(trial._trial_id))


def bounds_rule(trial, records, key, epoch):
    return rule_prunes(BoundsRule(n_startup_trials=2, n_warmup_steps=2), trial.study, trial.number, records, key,
                       epoch, [1.0])


def test_optuna_median_cuts_the_eventual_winner_for_code_bits_its_prior_wins_back(study):
    # At epoch 2 its unigram bound (7.90) is above the coarse trials' median (7.325), though its distortion
    # alone (6.40) is below anything their priors could reach.
    assert _run(study, FINE, optuna_median) == 2
    assert study.best_trial.number == 0


def test_the_rule_of_bounds_keeps_it_and_it_wins(study):
    assert _run(study, FINE, bounds_rule) is None
    assert study.best_trial.number == 2 and study.best_trial.value == pytest.approx(6.60)
    frame = trials_frame(study)  # the records are for the rule, not a column of the trials table
    assert len(frame) == 3 and not [c for c in frame.columns if "objective_bounds" in c]


def test_a_stage1_value_never_stands_in_for_a_stage2_one(study):
    # A trial with a good unigram bound (6.75 at epoch 4) whose prior then trails the others' at every stage-2
    # epoch: Optuna's median takes its best value so far, a stage-1 one, and lets it through; the rule compares
    # its prior's values with theirs and prunes it at the first stage-2 epoch.
    laggard = two_stage([7.10, 7.00, 6.80, 6.70], 0.05, [7.00, 6.95, 6.90, 6.88])
    assert _run(study, laggard, optuna_median) is None
    assert _run(study, laggard, bounds_rule) == STAGE1 + 1


def test_a_searched_epoch_count_keeps_the_comparisons_aligned(study):
    # Six stage-1 epochs: its epochs 5 and 6 are stage 1's, the others' 5 and 6 are their priors'. Optuna's
    # median compares its unigram bound there with their priors' values and prunes; the rule compares it with
    # trials that reached the same stage-1 epoch (none did), then its prior's epochs with theirs.
    longer = two_stage([7.20, 7.00, 6.90, 6.85, 6.83, 6.82], 0.25, [6.90, 6.85, 6.80, 6.78])
    assert _run(study, longer, optuna_median, stage1=6) == 5
    assert _run(study, longer, bounds_rule, stage1=6) is None


def test_a_trial_surely_worse_is_still_pruned(study):
    # Its distortion alone is worse than the coarse trials' whole bound: no prior can save it.
    hopeless = two_stage([7.60, 7.50, 7.45, 7.40], 0.30, [7.50, 7.45, 7.42, 7.41])
    assert _run(study, hopeless, bounds_rule) == 2


def test_bounds_of_a_stage1_epoch_span_distortion_to_the_unigram_bound():
    metrics = _metrics(6.4, 7.9)
    assert objective_bounds(metrics, BITS, [], prior_to_come=True).bounds == [[6.4, 7.9]]
    assert objective_bounds(metrics, BITS, [], prior_to_come=False).bounds == [[7.9, 7.9]]  # one stage: final
    assert objective_bounds(metrics, [("val_bits_per_dim", -1.0)], [], True).bounds == [[7.9, 6.4]]
    assert objective_bounds({"val_recon_mse": 0.01}, BITS, [], True) is None  # not every objective reported


def test_constraints_record_the_violation_and_a_value_that_is_not_finite_violates():
    bound = Constraint.model_validate("val_bits_per_dim <= 7.0")
    judged = objective_bounds(_metrics(6.4, 7.9), BITS, [bound], prior_to_come=True)
    assert judged.violation == [0.0, pytest.approx(0.9)]  # feasible if the prior is good, infeasible if not
    rate = Constraint.model_validate("rate_bits <= 90")
    # what a finished trial records with Trial.set_constraint, which refuses NaN (the trial then ended without
    # its reason): a metric that came out NaN or infinite violates its bound
    assert violation_of(rate, math.nan) == violation_of(rate, math.inf) == math.inf and violation_of(rate, 80) == -10
    assert objective_bounds({**_metrics(6.4, 7.9), "rate_bits": math.nan}, BITS, [rate], True).violation == [
        math.inf, math.inf]


def test_the_pareto_rule_uses_constrained_domination(tmp_path):
    # Three trials with lower error and rate than a fourth, but infeasible (their codebooks barely used): Optuna's
    # own front over feasible trials holds the fourth, so the rule must not count them as dominating it.
    rule = ParetoRule(n_startup_trials=2, n_warmup_steps=0, fraction=0.5)
    usage = Constraint.model_validate("val_usage >= 0.5")
    goals = [("val_recon_mse", 1.0), ("rate_bits", 1.0)]

    def judged(mse, bits, used):
        return objective_bounds({"val_recon_mse": mse, "rate_bits": bits, "val_usage": used}, goals, [usage], False)

    infeasible = [judged(0.010, 80.0, 0.10), judged(0.011, 70.0, 0.20), judged(0.012, 60.0, 0.30)]
    feasible = judged(0.020, 96.0, 0.90)
    as_points = [Judged.point([b[0] for b in j.bounds]) for j in infeasible]  # the constraints ignored
    assert rule.should_prune(Judged.point([0.020, 96.0]), as_points, epoch=1, signs=[1, 1])
    assert not rule.should_prune(feasible, infeasible, epoch=1, signs=[1, 1])
    assert rule.should_prune(judged(0.030, 90.0, 0.05), infeasible, epoch=1, signs=[1, 1])  # more violation

    study = optuna.create_study(directions=["minimize", "minimize"], storage=f"sqlite:///{tmp_path}/p.db")
    for number, trial in enumerate((*infeasible, feasible)):
        created = optuna.trial.create_trial(state=TrialState.RUNNING, distributions={}, params={})
        study.add_trial(created)
        frozen = study.get_trials()[number]
        handle = optuna.Trial(study, frozen._trial_id)
        handle.set_constraint(str(usage), trial.violation[0])
        study.tell(handle, [b[0] for b in trial.bounds])
    assert [t.number for t in study.best_trials] == [3]  # the feasible one is the front


def test_judged_survives_json():
    judged = Judged([[1.0, 2.0]], [0.0, 0.5])
    assert Judged.from_json(judged.to_json()) == judged


def test_the_perplexity_rule_never_prunes_a_finished_trial():
    rule = PerplexityRule(floor=0.1, warmup_epochs=1)
    collapsed = {"val_perplexity": 2.0}  # 2 of 64 codes
    assert not codebook_collapsed(rule, 1, 4, collapsed, 64)  # warming up
    assert codebook_collapsed(rule, 2, 4, collapsed, 64)  # one epoch below the floor, after the warm-up
    assert not codebook_collapsed(rule, 4, 4, collapsed, 64)  # its last epoch: it finished
    assert not codebook_collapsed(rule, 2, 4, {"val_perplexity": 7.0}, 64)
    assert not codebook_collapsed(rule, 2, 4, {"val_nll": 3.0}, 64)  # a stage-2 epoch
    assert not codebook_collapsed(PerplexityRule(floor=0.0), 2, 4, collapsed, 64)


@pytest.mark.parametrize("kind", ["hyperband", "successive_halving"])
def test_a_two_stage_search_refuses_a_pruner_of_point_values(tmp_path, capsys, kind):
    from vqtune.cli import main

    space = tmp_path / "space.yaml"
    space.write_text("study: s\nobjective: {metric: val_bits_per_dim}\n"
                     f"pruner: {{type: {kind}}}\nstorage: sqlite:///{tmp_path}/studies.db\n"
                     "base: {prior: {epochs: 2}}\nspace:\n  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n")
    assert main(["run", str(space), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"pruner.type: {kind} compares point values" in error
    assert "use median" in error and str(space) in error
    assert not (tmp_path / "studies.db").exists()


def test_every_pruner_type_of_the_schema_has_one_rule():
    from typing import get_args

    from vqtune.config import SearchSpace
    from vqtune.study import PRUNERS

    pruner = SearchSpace.model_fields["pruner"].annotation
    assert set(get_args(pruner.model_fields["type"].annotation)) == set(PRUNERS)
    assert all(PRUNERS[kind].kind == kind for kind in PRUNERS)


def test_the_perplexity_rule_warns_when_its_warm_up_outlasts_the_trials(tmp_path):
    from tests.tune.conftest import make_space
    from vqtune.tune import search_warnings

    def warned(**perplexity):
        space = make_space(tmp_path, perplexity=perplexity)  # 4 epochs of stage 1
        return [w for w in search_warnings(space) if w.startswith("perplexity rule")]

    assert not warned(floor=0.1, warmup_epochs=2)  # it can act at epoch 3
    [line] = warned(floor=0.1, warmup_epochs=3)  # epoch 4 is the last, never pruned
    assert "warmup_epochs 3 leaves no stage-1 epoch before the last (4)" in line
    assert "lower perplexity.warmup_epochs" in line
    assert not warned(floor=0.0, warmup_epochs=3)  # off
