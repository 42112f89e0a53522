"""Precision and threads are measured on the machine, decided by stated tolerances, cached and recorded."""

from __future__ import annotations

import json
import time

import pytest
import torch

from advisor import compute
from advisor.compute import Precision, ThreadChoice, choose_precision
from advisor.errors import InputError
from advisor.spec import load_task


@pytest.fixture
def auto_precision(monkeypatch):
    """The suite pins fp32 (tests/conftest.py); these tests look at `auto` itself."""
    monkeypatch.delenv(compute.PRECISION_ENV, raising=False)


def _scoring(speed: float, med: float = 0.02, agree: float | None = 0.97) -> dict:
    return {"scoring_speedup": speed, "logp_median_abs_diff": med, "label_agreement": agree, "probe_items": 32}


def test_bf16_is_kept_for_scoring_only_when_faster_by_the_stated_margin_and_faithful():
    assert compute._decide_scoring(_scoring(2.0))[0] == "bf16"
    assert compute._decide_scoring(_scoring(2.0, agree=None))[0] == "bf16"  # generation: per-token check only
    slow, why = compute._decide_scoring(_scoring(compute.SPEEDUP_MIN - 0.05))
    assert slow == "fp32" and "under the" in why
    assert compute._decide_scoring(_scoring(2.0, med=compute.LOGP_MEDIAN_TOL + 0.01))[0] == "fp32"
    changed, why = compute._decide_scoring(_scoring(2.0, agree=compute.AGREE_MIN - 0.01))
    assert changed == "fp32" and "outside the tolerance" in why


def test_bf16_is_kept_for_training_only_when_faster_and_the_losses_track_fp32():
    ok = {"training_speedup": 1.4, "loss_rel_diff": 0.02}
    assert compute._decide_training(ok)[0] == "bf16"
    assert compute._decide_training({**ok, "training_speedup": 1.1})[0] == "fp32"
    assert compute._decide_training({**ok, "loss_rel_diff": compute.LOSS_TOL + 0.01})[0] == "fp32"


def test_a_forced_setting_or_a_cpu_without_native_bf16_measures_nothing(loaded_model, monkeypatch, tmp_path,
                                                                          auto_precision):
    def boom(*a, **k):
        raise AssertionError("measured")

    monkeypatch.setattr(compute, "measure_scoring", boom)
    probe = [([{"role": "user", "content": "x"}], ["a", "b"])]
    forced = choose_precision(loaded_model, "scoring", "bf16", probe=probe, cache_dir=tmp_path)
    assert (forced.precision, forced.why) == ("bf16", "forced")
    monkeypatch.setattr(compute, "cpu_flags", lambda: ["avx2", "avx512f"])
    plain = choose_precision(loaded_model, "scoring", "auto", probe=probe, cache_dir=tmp_path)
    assert (plain.precision, plain.why) == ("fp32", "no_native_bf16") and "emulated" in plain.reason
    monkeypatch.setenv(compute.PRECISION_ENV, "bf16")
    env = choose_precision(loaded_model, "scoring", "auto", probe=probe, cache_dir=tmp_path)
    assert (env.precision, env.why) == ("bf16", "forced") and compute.PRECISION_ENV in env.reason
    monkeypatch.setenv(compute.PRECISION_ENV, "fp16")
    with pytest.raises(InputError, match="ADVISE_PRECISION='fp16' in the environment: use auto, fp32 or bf16"):
        choose_precision(loaded_model, "scoring", "auto", probe=probe, cache_dir=tmp_path)


def test_auto_measures_on_the_tasks_train_items_once_and_caches_the_choice(loaded_model, monkeypatch, tmp_path,
                                                                           auto_precision):
    monkeypatch.setattr(compute, "cpu_flags", lambda: ["avx512f", "avx512_bf16"])  # measure on any CPU
    monkeypatch.setattr(compute, "PROBE_ITEMS", 6)
    task = load_task("sample_tasks/trec/task.yaml")
    probe = compute.scoring_probe(task)
    assert len(probe) == 6 and all(opts == task.labels for _, opts in probe)
    assert all(m[-1]["content"].startswith("Question:") for m, _ in probe)  # train items, as the prompt asks
    first = choose_precision(loaded_model, "scoring", "auto", probe=probe, cache_dir=tmp_path)
    m = first.measured
    assert first.why == "measured" and not first.cached
    assert m["probe_items"] == 6 and m["scoring_speedup"] > 0 and 0.0 <= m["label_agreement"] <= 1.0
    assert 0.0 <= m["logp_median_abs_diff"] <= m["logp_p95_abs_diff"]
    assert first.precision == compute._decide_scoring(m)[0]
    monkeypatch.setattr(compute, "measure_scoring", lambda *a: (_ for _ in ()).throw(AssertionError("again")))
    again = choose_precision(loaded_model, "scoring", "auto", probe=probe, cache_dir=tmp_path)
    assert again.cached and again.precision == first.precision and again.measured == m
    stored = json.loads((tmp_path / "compute_precision.json").read_text())
    assert [v["precision"] for v in stored.values()] == [first.precision]


def test_the_training_probe_times_lora_steps_from_the_same_start_in_both_precisions(loaded_model, monkeypatch):
    monkeypatch.setattr(compute, "PROBE_STEPS", 1)
    task = load_task("sample_tasks/trec/task.yaml")
    from advisor.data import load_examples
    from advisor.prompting import answer_text, render_messages

    train = load_examples(task, task.data_path("train"), split="train")[:16]
    m = compute.measure_training(loaded_model, [(render_messages(task, ex), answer_text(task, ex.output))
                                                for ex in train])
    losses = m["training_losses"]
    assert len(losses["fp32"]) == len(losses["bf16"]) == 2
    # The same LoRA init (zero B) and the same first batch: the first losses are the base model's, close.
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=0.05)
    assert m["training_speedup"] > 0 and m["loss_rel_diff"] >= 0


def test_threads_follow_what_the_probe_measures_and_are_rechecked_at_most_once_a_minute(monkeypatch):
    monkeypatch.setattr(compute, "cores", lambda: 2)
    before = torch.get_num_threads()
    calls = []

    def contended() -> None:  # two threads wait on each other: slower than one
        calls.append(torch.get_num_threads())
        time.sleep(0.02 * torch.get_num_threads() ** 2)

    def scaling() -> None:
        calls.append(torch.get_num_threads())
        time.sleep(0.04 / torch.get_num_threads())

    try:
        choice = ThreadChoice("auto", "cpu")
        assert choice.check("scoring", contended) == 1 and torch.get_num_threads() == 1
        assert sorted(set(calls)) == [1, 2] and len(calls) == 4  # both, interleaved, twice
        assert choice.check("scoring", scaling) == 1 and len(calls) == 4  # within RECHECK_S: not measured
        assert choice.check("training", scaling) == 2 and torch.get_num_threads() == 2
        with choice.paused():
            assert choice.check("paused-stage", contended) is None
        summary = choice.summary()
        assert summary["chosen_counts"] == {"1": 1, "2": 1} and summary["cores"] == 2
        assert [c["stage"] for c in summary["choices"]] == ["scoring", "training"]
        assert summary["choices"][0]["probe_seconds"]["1"] < summary["choices"][0]["probe_seconds"]["2"]
        forced = ThreadChoice(torch.get_num_threads(), "cpu")  # forced to the count torch has: still recorded
        assert forced.check("scoring", contended) == torch.get_num_threads()
        forced.check("training", contended)
        assert [c["why"] for c in forced.summary()["choices"]] == ["forced"]
        assert ThreadChoice("auto", "cuda").check("scoring", contended) is None
    finally:
        torch.set_num_threads(before)


def test_the_thread_probe_leaves_trainings_random_draws_alone(loaded_model):
    from advisor.backends.hf import forward_probe

    probe = forward_probe(loaded_model.model, "cpu", batch=1, length=8)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    probe()
    assert torch.equal(torch.rand(4), expected)


def test_a_frozen_model_in_bf16_scores_through_one_matmul_with_the_same_logits(loaded_model):
    """A merged LoRA model's weights do not require grad; cast to bf16 as it was, its output projection
    got the strided last position `logits_to_keep=1` leaves and copied its weight once per row (8x
    slower than fp32's path here: bench/bench_precision.py). to_precision hands the projection a
    contiguous input: same logits, registered once, fp32 left as it was."""
    import copy

    from advisor.backends.hf import to_precision

    frozen = copy.deepcopy(loaded_model.model).requires_grad_(False)
    cast = copy.deepcopy(frozen).to(torch.bfloat16)
    fast = to_precision(copy.deepcopy(frozen), "bf16")
    seen: list[bool] = []
    fast.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].is_contiguous()))
    ids = torch.arange(4 * 24).reshape(4, 24) % 1000 + 100
    with torch.inference_mode():
        want = cast(input_ids=ids, logits_to_keep=1).logits
        got = fast(input_ids=ids, logits_to_keep=1).logits
    assert seen == [True]
    assert got.dtype == torch.bfloat16 and got.shape == want.shape == (4, 1, loaded_model.model.config.vocab_size)
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=0.05)
    assert to_precision(fast, "bf16") is fast and len(fast.get_output_embeddings()._forward_pre_hooks) == 1
    assert not to_precision(copy.deepcopy(frozen), "fp32").get_output_embeddings()._forward_pre_hooks
    assert loaded_model.in_precision("bf16").get_output_embeddings()._forward_pre_hooks


def test_a_run_records_how_its_local_model_computed(trec_small, tmp_path, monkeypatch):
    from advisor.runner import Runner

    task = load_task(trec_small, [])
    runner = Runner(task, tmp_path / "run", latency_probe=0, limit=4)
    try:
        record = runner.run(["prompt"]).to_json()
    finally:
        runner.close()
    info = record["compute"]
    assert info["cpu_flags"] == compute.cpu_flags()
    (model,) = info["models"].values()
    assert model["device"] == "cpu"
    assert model["scoring"]["precision"] == "fp32" and model["scoring"]["why"] == "forced"  # ADVISE_PRECISION
    assert model["threads"]["setting"] == "auto" and model["threads"]["cores"] == compute.cores()
    assert sum(model["threads"]["chosen_counts"].values()) == len(model["threads"]["choices"]) >= 1
    assert isinstance(Precision(**{k: v for k, v in model["scoring"].items()}), Precision)


def test_the_reports_provenance_says_how_the_model_computed():
    from advisor.report.sections import compute_rows

    record = {"compute": {"cpu": "Xeon", "cpu_flags": ["avx512_bf16", "amx_bf16"], "models": {"hf:m@1/bf16": {
        "device": "cpu", "scoring": {"precision": "bf16", "why": "measured",
                                     "reason": "bf16 (bf16 ran 1.49x as fast as fp32)"},
        "threads": {"setting": "auto", "cores": 2, "chosen_counts": {"1": 3, "2": 1}}}}},
        "levers": [{"name": "lora", "artifact": {"info": {"training_precision_choice": {
            "precision": "fp32", "reason": "fp32 (bf16 base weights 1.10x fp32's steps/s: under 1.2x)"}}}}]}
    rows = dict(map(tuple, compute_rows(record)))
    assert rows["CPU"] == "Xeon (avx512_bf16, amx_bf16)"
    assert rows["precision, hf:m@1/bf16"] == "bf16 (bf16 ran 1.49x as fast as fp32)"
    assert rows["threads, hf:m@1/bf16"].startswith("measured on 2 cores: 1 thread at 3 of 4 checks, 2 threads at 1 of 4")
    assert rows["training precision, lora"].startswith("fp32 (bf16 base weights 1.10x")
    assert compute_rows({"levers": []}) == []
    from advisor.report.sections import compute_lines

    assert compute_lines(record) == ["hf:m computed in bf16 (bf16 ran 1.49x as fast as fp32); "
                                     "threads: 1 thread at 3 of 4 checks, 2 threads at 1 of 4 checks"]
    scoring = record["compute"]["models"]["hf:m@1/bf16"]["scoring"]
    scoring.update(measured_at="2026-12-07T20:17:53Z", cached=True)
    assert compute_lines(record)[0].startswith("hf:m computed in bf16 (bf16 ran 1.49x as fast as fp32) "
                                               "(measured 2026-12-07T20:17:53Z, cached); threads: 1 thread")
    assert dict(map(tuple, compute_rows(record)))["precision, hf:m@1/bf16"].endswith("(measured 2026-12-07T20:17:53Z, cached)")


def test_a_bad_precision_in_the_environment_is_refused_in_one_line_before_a_model_loads(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from advisor.cli import main

    monkeypatch.setenv(compute.PRECISION_ENV, "half")
    monkeypatch.setattr("advisor.backends.hf.load_base", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    result = CliRunner().invoke(main, ["run", "sample_tasks/trec/task.yaml", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.strip() == "error: ADVISE_PRECISION='half' in the environment: use auto, fp32 or bf16"
    assert not (tmp_path / "r").exists()


def test_a_thread_count_must_be_auto_or_a_whole_number():
    from advisor.spec import ComputeSpec

    assert ComputeSpec(threads=2).threads == 2 and ComputeSpec().threads == "auto"
    for bad in (True, 0, 2.5, "many"):
        with pytest.raises(ValueError):
            ComputeSpec(threads=bad)
