"""The LoRA levers' prompt form (issue 29): template_only / as_written, and `auto` chosen on the validation split.

Real SmolLM2, real tiny trainings (4 steps of 4 examples on the 16-question tiny task; 4 validation items).
The runs share one adapter cache, so a form trained once is reused by the later runs of the same test.
"""

from __future__ import annotations

import pytest

from advisor.errors import InputError
from advisor.plan import lever_options
from advisor.prompting import render_messages
from advisor.runner import Runner
from baselines import adapters
from baselines.lora import LoraLever, LoraRagLever, in_form
from baselines.lora_train import prompt_ids
from tests.lora.conftest import SYSTEM, _write_task

TINY = {"max_len": 64, "batch_size": 4, "max_steps": 4, "eval_every": 2, "val_fraction": 0.25,
        "learning_rate": 1e-3, "warmup_steps": 1}  # fmt: skip


def _task(folder, threshold: float, **lora):
    task = _write_task(folder, lever_options={"lora": {**TINY, **lora}})
    return task.model_copy(update={"target": task.target.model_copy(update={"threshold": threshold})})


def _run(task, loaded, tmp_path, name: str):
    """`advise run` of the lora lever on the session's model, all runs sharing one adapter cache."""
    from advisor.backends.hf import HFBackend
    from advisor.modelspec import resolve_models

    runner = Runner(task, tmp_path / name, cache_dir=tmp_path / "cache", latency_probe=0)
    for choice in resolve_models(task):
        runner.backends.provide(choice, HFBackend(loaded, usd_per_hour=task.costs.cpu_hour_usd))
    try:
        result = runner.run(["lora"])
    finally:
        runner.store.close()
    result.write(tmp_path / name / "results.json")  # as `advise run` leaves the folder
    [row] = result.levers
    return row, result.to_json()["levers"][0]


def test_template_only_drops_the_task_system_message_and_costs_fewer_prompt_tokens(loaded, tmp_path):
    task = _write_task(tmp_path / "task")
    from advisor.data import load_dataset

    ex = load_dataset(task).train[0]
    written = render_messages(task, ex)
    short = in_form(written, "template_only")
    assert written[0]["role"] == "system" and SYSTEM in written[0]["content"]
    assert short == [written[-1]] and short[0]["content"] == "Question: What is the capital of France ?\nType:"
    assert in_form(written, "as_written") == written
    long_ids, short_ids = prompt_ids(loaded.tokenizer, written), prompt_ids(loaded.tokenizer, short)
    # The labels line and the task's instructions are gone; SmolLM2's template puts its own default system line.
    # On this tiny task: 61 tokens as written, 42 template-only (19 fewer; on sample_tasks/trec ~250 fewer).
    assert (len(long_ids), len(short_ids)) == (61, 42)
    served = loaded.tokenizer.decode(short_ids)
    assert SYSTEM not in served and "Answer with one label" not in served and "SmolLM" in served


def test_an_unknown_prompt_form_is_refused_naming_the_option(tmp_path):
    task = _write_task(tmp_path / "task", lever_options={"lora": {"prompt_form": "short"}})
    with pytest.raises(InputError, match="prompt_form") as e:
        lever_options(task, LoraLever())
    assert "\n" not in str(e.value)
    rag = _write_task(tmp_path / "rag", levers=("lora-rag",), lever_options={"lora-rag": {"prompt_form": "none"}})
    with pytest.raises(InputError, match="prompt_form"):
        lever_options(rag, LoraRagLever())


@pytest.mark.slow
def test_forced_and_auto_forms_train_what_the_rule_says_and_record_it(loaded, tmp_path):
    # Forced: one adapter each, versions differing by form.
    tmpl, tmpl_rec = _run(_task(tmp_path / "t1", 1.0, prompt_form="template_only"), loaded, tmp_path, "forced-t")
    form = tmpl.artifact.info["prompt_form"]
    assert form["chosen"] == "template_only" and form["setting"] == "forced" and form["trained"] == ["template_only"]
    assert form["validation"] is None and tmpl.artifact.info["steps_run"] == 4
    asked = LoraLever().requests(tmpl.artifact, tmpl.artifact.private["validation"])
    assert asked and all([m["role"] for m in r.messages] == ["user"] for r in asked)
    written, wr_rec = _run(_task(tmp_path / "t2", 1.0, prompt_form="as_written"), loaded, tmp_path, "forced-w")
    assert written.artifact.info["prompt_form"]["chosen"] == "as_written"
    assert written.artifact.info["adapter"] != tmpl.artifact.info["adapter"]
    assert written.artifact.info["data_hash"] != tmpl.artifact.info["data_hash"]
    assert len(adapters.list_adapters(tmp_path / "cache")) == 2
    # Per-query tokens are priced as served: the template-only row reads far fewer prompt tokens.
    tok = form["tokens_in"]
    assert tok["as_written"] - tok["template_only"] == pytest.approx(19.0)  # the system message, less SmolLM2's own line
    t_in = sum(p.tokens_in for p in tmpl.predictions) / len(tmpl.predictions)
    w_in = sum(p.tokens_in for p in written.predictions) / len(written.predictions)
    assert t_in < w_in
    assert tmpl_rec["cost"]["per_1k_queries_usd"] < wr_rec["cost"]["per_1k_queries_usd"]

    # auto, target 0.0: template_only meets it on validation; as_written is not trained (the forced
    # run's adapter is reused: the same pairs, the same version).
    low, low_rec = _run(_task(tmp_path / "t3", 0.0), loaded, tmp_path, "auto-low")
    form = low_rec["artifact"]["info"]["prompt_form"]
    assert form["setting"] == "auto" and form["chosen"] == "template_only" and form["why"] == "meets_target"
    assert form["trained"] == ["template_only"] and "as_written not trained" in form["reason"]
    assert form["validation"]["items"] == 4 and list(form["validation"]["scores"]) == ["template_only"]
    assert 0.0 <= form["validation"]["scores"]["template_only"] <= 1.0 and "test" not in form["validation"]
    assert low.artifact.info["adapter"] == tmpl.artifact.info["adapter"] and low.artifact.info["reused"]
    # Setup: the one training plus the validation answers.
    assert low.artifact.setup_seconds == pytest.approx(low.artifact.info["train_seconds"]
                                                       + form["validation"]["seconds"])
    assert form["validation"]["seconds"] > 0
    # The label ranking reads the same validation answers, already priced.
    assert low_rec["option_ranking"]["held_out"]["n"] == 4

    # auto, target 1.0: template_only misses it, so as_written is trained too (reused here) and tested.
    high, high_rec = _run(_task(tmp_path / "t4", 1.0), loaded, tmp_path, "auto-high")
    form = high_rec["artifact"]["info"]["prompt_form"]
    assert form["trained"] == ["template_only", "as_written"] and form["why"] in {"kept", "switched"}
    val = form["validation"]
    assert set(val["scores"]) == {"template_only", "as_written"} and val["items"] == 4
    assert val["test"]["n"] == 4 and val["test"]["default"] == "template_only"
    assert form["chosen"] == val["test"]["chosen"]
    assert "below the target 1.00" in form["reason"]
    kept = high.artifact.info["adapter"]
    assert kept == {"template_only": tmpl, "as_written": written}[form["chosen"]].artifact.info["adapter"]
    assert form["other_adapter"] == {"template_only": written, "as_written": tmpl}[form["chosen"]].artifact.info["adapter"]
    # Both trainings are setup (train seconds summed), only the kept one's retraining is upkeep.
    both = tmpl.artifact.info["train_seconds"] + written.artifact.info["train_seconds"]
    assert high.artifact.setup_seconds == pytest.approx(both + val["seconds"])
    assert high.artifact.upkeep_usd_per_month == pytest.approx(2 * high.artifact.info["train_usd"])
    assert len(adapters.list_adapters(tmp_path / "cache")) == 2  # nothing new trained

    # The scorecard and the report say the form, from the stored results.json.
    import json

    from advisor.report.fmt import prompt_form_label
    from advisor.report.render import write_reports
    from advisor.report.scorecard import input_notes

    assert prompt_form_label(high_rec) == form["label"] == {"template_only": "template only",
                                                            "as_written": "as written"}[form["chosen"]]
    stored = json.loads((tmp_path / "auto-low" / "results.json").read_text())
    assert prompt_form_label(stored["levers"][0]) == "template only"
    [note] = [n.plain for n in input_notes(stored) if "prompt form" in n.plain]
    assert note.startswith("lora: prompt form template only (chosen by prompt_form: auto): template_only scores "
                           "accuracy ") and "on 4 validation items, at or above the target 0.00" in note
    [md] = write_reports(tmp_path / "auto-low", ("md",))
    assert "Prompt form: template only (chosen by prompt_form: auto): template_only scores" in md.read_text()
    forced = json.loads((tmp_path / "forced-w" / "results.json").read_text())
    assert "lora: prompt form as written (forced): forced by lever_options.lora.prompt_form: as_written." in [
        n.plain for n in input_notes(forced)]


@pytest.mark.slow
def test_lora_rag_template_only_keeps_the_retrieved_context_and_versions_by_form(make_context, tmp_path):
    opts = {**TINY, "max_steps": 1, "max_len": 128, "rag": {"source": "examples", "k": 2}}
    versions, requests = {}, {}
    for form in ("template_only", "as_written"):
        task = _write_task(tmp_path / "task", levers=("lora-rag",),
                           lever_options={"lora-rag": {**opts, "prompt_form": form}})
        ctx = make_context(task, tmp_path)
        lever = LoraRagLever()
        artifact = lever.prepare(ctx, lever_options(task, lever))
        assert artifact.info["prompt_form"]["chosen"] == form and artifact.info["steps_run"] == 1
        versions[form] = artifact.info["adapter"]
        requests[form] = lever.requests(artifact, ctx.data.eval[:1])[0]
        held = lever.held_out(ctx, lever_options(task, lever), artifact)
        [asked] = held.build(held.examples[:1])
        assert [m["role"] for m in asked.messages] == (["user"] if form == "template_only" else ["system", "user"])
    assert versions["template_only"] != versions["as_written"]
    short, full = requests["template_only"], requests["as_written"]
    assert [m["role"] for m in short.messages] == ["user"] and "Solved examples" in short.messages[0]["content"]
    assert short.messages[0] == full.messages[-1] and full.messages[0]["role"] == "system"
    assert short.content_free is not None and all(m["role"] != "system" for m in short.content_free)


def _lora_row(chosen: str | None, setting: str = "auto") -> dict:
    from tests.record_factory import lever_entry

    row = lever_entry("lora", 0.9, family="fine-tuning", rung=3)
    info = {"adapter": "v1"}
    if chosen:
        info["prompt_form"] = {"chosen": chosen, "setting": setting, "label": chosen.replace("_", " "),
                               "reason": "why"}
    row["artifact"]["info"] = info
    return row


def test_compare_names_a_change_of_prompt_form_and_figures_show_it_as_the_wording(tmp_path):
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    from advisor.compare import run_differences
    from advisor.report.fmt import prompt_form_label
    from tests.record_factory import lever_entry, record

    spec = importlib.util.spec_from_file_location("bench_figures", Path(__file__).resolve().parents[2] / "bench"
                                                  / "figures.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)

    def stored(folder, row):  # what run_differences reads of a StoredRun
        return SimpleNamespace(run_dir=tmp_path / folder, results=record([lever_entry("prompt", 0.5), row], "lora"))

    a, b = stored("a", _lora_row("as_written")), stored("b", _lora_row("template_only"))
    assert run_differences(a, b) == ["lora: prompt form as written -> template only"]
    assert run_differences(a, stored("c", _lora_row("as_written", "forced"))) == []
    # A run recorded before the form existed trained as written: no change named against as_written.
    assert prompt_form_label(_lora_row(None)) == "as written"
    assert run_differences(stored("old", _lora_row(None)), a) == []
    assert prompt_form_label(lever_entry("prompt", 0.5)) is None
    row = figures.lever_row({**_lora_row("template_only"), "verdict": {"state": "meets"}}, "accuracy")
    assert row["wording"] == "template only"
    figs = {"task": "t", "folder": "trec", "limit": None, "slice": False,
            "target": {"metric": "accuracy", "threshold": 0.8}, "levers": [row],
            "recommendation": {"lever": "lora", "reason": "r"}, "git": {"commit": "0123456789", "dirty": False},
            "wall_s": 1.0, "date": "2026-01-01", "command": "advise run x", "argv": []}
    assert "| lora | 0.900 (0.900–0.900) | meets | — | template only |" in figures.render_block(figs)


def test_the_dry_run_counts_lora_prompts_in_the_form_it_will_serve(tmp_path, cache_dir):
    from advisor.estimate import estimate

    rows = {}
    for setting in ("auto", "as_written", "template_only"):
        task = _write_task(tmp_path / setting, lever_options={"lora": {**TINY, "prompt_form": setting}})
        [rows[setting]] = estimate(task, ["lora"], latency_probe=0, cache_dir=cache_dir)
    # 4 eval items, 19 prompt tokens fewer each without the task's system message (see the first test).
    assert rows["as_written"].tokens_in - rows["template_only"].tokens_in == 4 * 19
    assert rows["auto"].tokens_in == rows["template_only"].tokens_in
    assert "counted template only (prompt_form: auto; as_written, with the system message, is also trained" \
        in rows["auto"].priced
    assert "counted as written (prompt_form: as_written)" in rows["as_written"].priced
    # No validation split (val_fraction 0): auto keeps the prompt as written.
    task = _write_task(tmp_path / "noval", lever_options={"lora": {**TINY, "val_fraction": 0}})
    [noval] = estimate(task, ["lora"], latency_probe=0, cache_dir=cache_dir)
    assert noval.tokens_in == rows["as_written"].tokens_in and "no validation split" in noval.priced
