"""The learning curve: the fit on known curves, and one real run at two train sizes."""

from __future__ import annotations

import pytest

from advisor.types import GenerationParams
from baselines import adapters
from baselines.lora import LoraLever, LoraOptions, fit_curve, learning_curve


def test_power_law_is_recovered_and_says_how_many_examples_reach_the_target():
    ns = [100, 200, 400, 800]
    ys = [0.9 - 2.0 * n**-0.5 for n in ns]
    fit = fit_curve(ns, ys, threshold=0.85)
    assert fit["model"] == "power" and not fit["flat"]
    assert fit["params"]["a"] == pytest.approx(0.9, abs=0.01)
    assert fit["n_needed"] == pytest.approx(1600, rel=0.1)  # 0.9 - 2 / sqrt(n) = 0.85 at n = 1600


def test_a_curve_that_levels_off_below_the_target_is_out_of_reach():
    ns = [100, 200, 400, 800]
    ys = [0.7 - 2.0 * n**-0.5 for n in ns]
    fit = fit_curve(ns, ys, threshold=0.85)
    assert fit["n_needed"] is None and "levels off" in fit["message"]


@pytest.mark.parametrize("ys", [[0.60, 0.605, 0.602], [0.7, 0.6, 0.5]])
def test_flat_or_falling_curves_are_called_flat(ys):
    fit = fit_curve([50, 100, 200], ys, threshold=0.8)
    assert fit["flat"] and fit["n_needed"] is None and "flat" in fit["message"]


def test_a_target_already_met_names_the_smallest_size_that_met_it():
    fit = fit_curve([50, 100, 200], [0.7, 0.82, 0.9], threshold=0.8)
    assert fit["n_needed"] == 100


@pytest.mark.slow
def test_learning_curve_trains_nested_subsets_and_records_their_scores(make_task, make_context, tmp_path):
    task = make_task(tmp_path / "task")
    ctx = make_context(task, tmp_path)
    lever = LoraLever()
    options = LoraOptions(max_len=64, batch_size=4, max_steps=2, val_fraction=0.25, learning_rate=1e-3)

    def accuracy(artifact):
        gens = artifact.backend.score_options(lever.requests(artifact, ctx.data.eval), GenerationParams())
        return sum(g.text == ex.output for g, ex in zip(gens, ctx.data.eval)) / len(gens)

    curve = learning_curve(ctx, options, fractions=(0.5, 1.0), score_fn=accuracy, lever=lever)
    assert [p.n_train for p in curve.points] == [8, 16]
    assert curve.metric == "accuracy" and curve.threshold == 0.8 and curve.message
    assert curve.flat == (curve.n_needed is None and curve.model == "flat")
    rows = {r["version"]: r for r in adapters.list_adapters(ctx.cache_dir)}
    for p in curve.points:
        assert rows[p.adapter]["metrics"] == {"accuracy": p.metric}


def test_a_rise_within_the_eval_noise_is_flat_and_two_sizes_fit_log_linear():
    # One more right answer in 60 is noise, not a trend.
    assert fit_curve([100, 200], [10 / 60, 11 / 60], threshold=0.8, n_eval=60)["flat"]
    fit = fit_curve([100, 200], [0.3, 0.5], threshold=0.8, n_eval=60)
    assert fit["model"] == "log-linear" and fit["n_needed"] == pytest.approx(565, rel=0.02)
