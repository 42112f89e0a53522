"""The learning curve (advisor.curves): the fit on known curves, the nested subsets, one real run at two
train sizes, and a curve per `lora@alias` row, each on its own model."""

from __future__ import annotations

import pytest

from advisor.curves import curve_subsets, fit_curve, has_curve, measure_curve
from advisor.types import Example, GenerationParams
from baselines import adapters
from baselines.lora import LoraLever, LoraOptions, LoraRagLever
from baselines.prompt import ZeroShotLever

TINY = {"max_len": 64, "batch_size": 4, "max_steps": 2, "val_fraction": 0.25, "learning_rate": 1e-3}


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
    options = LoraOptions(**TINY)

    def accuracy(artifact):
        gens = artifact.backend.score_options(lever.requests(artifact, ctx.data.eval), GenerationParams())
        return sum(g.text == ex.output for g, ex in zip(gens, ctx.data.eval)) / len(gens)

    curve = measure_curve(lever, ctx, options, fractions=(0.5, 1.0), score=accuracy)
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


def test_subsets_are_nested_seeded_and_the_whole_split_keeps_its_order():
    train = [Example(f"t{i}", f"question {i}", "a", {}, f"train.jsonl:{i + 1}", str(i)) for i in range(10)]
    got = curve_subsets(train, (1.0, 0.25, 0.5, 0.5), seed=3)
    assert [(f, len(s)) for f, s in got] == [(0.25, 2), (0.5, 5), (1.0, 10)]
    ids = [[ex.id for ex in s] for _, s in got]
    assert set(ids[0]) < set(ids[1]) < set(ids[2]) and ids[2] == [ex.id for ex in train]
    assert all(s == sorted(s, key=lambda i: int(i[1:])) for s in ids)  # file order within each subset
    assert curve_subsets(train, (0.5,), seed=3) == got[1:2]  # the same draw, whatever else is asked
    assert curve_subsets(train, (0.5,), seed=4) != got[1:2]
    assert len(curve_subsets(train[:3], (0.01,))[0][1]) == 1  # never an empty subset
    for bad in ((), (0.0,), (1.5,)):
        with pytest.raises(ValueError, match="fractions"):
            curve_subsets(train, bad)


def test_only_levers_that_train_on_subsets_have_a_curve():
    assert has_curve(LoraLever()) and has_curve(LoraRagLever())
    assert not has_curve(ZeroShotLever())


@pytest.mark.slow
def test_learning_curve_with_several_models_is_measured_per_row_on_its_own_model(make_task, loaded, tmp_path):
    """Issue 28 item 8: with several models the rows are `lora@alias`; `--learning-curve` failed after
    every lever ran (`lora@b` reached load_levers). Each row's curve is keyed by its row name and trained
    on that row's model: here two aliases of the embedded model under different identities, so an
    adapter says which base it was trained on."""
    from dataclasses import replace

    from advisor.backends.hf import HFBackend
    from advisor.modelspec import resolve_models
    from advisor.runner import Runner

    spec = "hf:smollm2-135m-instruct"
    task = make_task(tmp_path / "task", levers=("lora@a", "lora@b"), models={"a": spec, "b": spec},
                     lever_options={"lora": TINY})
    bases = {"a": loaded, "b": replace(loaded, identity=loaded.identity + "+b")}
    runner = Runner(task, tmp_path / "run", cache_dir=tmp_path / "cache", latency_probe=0)
    for choice in resolve_models(task):  # the session's model under two identities: loaded once
        runner.backends.provide(choice, HFBackend(bases[choice.alias], usd_per_hour=task.costs.cpu_hour_usd))
    try:
        result = runner.run(curve_fractions=(0.5, 1.0))
    finally:
        runner.store.close()
    data = result.to_json()
    rows = {r["name"]: r for r in data["levers"]}
    curves = data["learning_curves"]
    assert list(rows) == list(curves) == ["lora@a", "lora@b"]
    made = {r["version"]: r for r in adapters.list_adapters(tmp_path / "cache")}
    for name, alias in (("lora@a", "a"), ("lora@b", "b")):
        curve = curves[name]
        assert [p["n_train"] for p in curve["points"]] == [8, 16] and curve["message"]
        # The full-size point is the row's own adapter and score; every point was trained on the row's model.
        assert curve["points"][-1]["adapter"] == rows[name]["artifact"]["info"]["adapter"]
        assert curve["points"][-1]["metric"] == pytest.approx(rows[name]["metrics"]["accuracy"]["value"])
        assert {made[p["adapter"]]["base_model"] for p in curve["points"]} == {bases[alias].identity}
    assert curves["lora@a"]["points"][0]["adapter"] != curves["lora@b"]["points"][0]["adapter"]
