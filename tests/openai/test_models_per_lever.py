"""A model per lever: several models in one task, a row per (lever, model), each priced on its own."""

from __future__ import annotations

import pytest

from advisor.errors import InputError
from advisor.modelspec import resolve_models
from advisor.plan import plan_rows
from advisor.registry import load_levers
from advisor.runner import Runner
from advisor.spec import load_task

TINY_LORA = ("{max_len: 96, batch_size: 4, max_steps: 2, eval_every: 2, val_fraction: 0.25, "
             "learning_rate: 0.001, warmup_steps: 1}")


def _rows(task, names):
    levers = {lv.name: lv for lv in load_levers([n.split("@")[0] for n in names])}
    return [(r.name, r.model.spec) for r in plan_rows(task, names, levers)]


def test_rows_expand_per_model_and_fine_tuning_needs_a_local_model(make_task):
    task = load_task(make_task("models:\n  api: openai:gpt-4o-mini\n  local: hf:smollm2-135m-instruct\n"
                               "openai: {max_concurrency: 4}\n", levers="[prompt, lora]"))
    assert _rows(task, ["prompt", "lora"]) == [("prompt@api", "openai:gpt-4o-mini"),
                                               ("prompt@local", "hf:smollm2-135m-instruct"),
                                               ("lora@local", "hf:smollm2-135m-instruct")]
    assert _rows(task, ["prompt@api"]) == [("prompt@api", "openai:gpt-4o-mini")]
    with pytest.raises(InputError, match="needs a local 'hf:' model"):
        _rows(task, ["lora@api"])
    with pytest.raises(InputError, match="does not define"):
        _rows(task, ["prompt@nope"])
    # Settings: the task's `openai:` section, overridden per model.
    assert [m.settings.max_concurrency for m in resolve_models(task)] == [4, 4]
    single = load_task(make_task("model: openai:gpt-4o-mini\n", folder="single"))
    assert _rows(single, ["prompt"]) == [("prompt", "openai:gpt-4o-mini")]  # one model: plain names as before


def test_model_and_models_together_is_an_input_error(make_task):
    with pytest.raises(InputError, match="either 'model' or 'models'"):
        load_task(make_task("model: hf:smollm2-135m-instruct\nmodels:\n  a: openai:x\n"))


@pytest.mark.slow
def test_prompt_on_the_server_and_lora_on_the_local_model_end_to_end(llama_server, make_task, tmp_path):
    task_file = make_task(
        "models:\n"
        f"  served: {{model: 'openai:smollm2', base_url: '{llama_server.base_url}', price: {{server_hour_usd: 1.2}}}}\n"
        "  local: hf:smollm2-135m-instruct\n"
        f"lever_options:\n  lora: {TINY_LORA}\n"
        "prices: {}\n", levers="[prompt@served, prompt@local, lora@local]", n_eval=6, n_train=16)
    task = load_task(task_file)
    runner = Runner(task, tmp_path / "run", latency_probe=1)
    try:
        result = runner.run()
        data = result.to_json()
        served_backend = runner.backend_for(resolve_models(task)[0])
        runner.store.close()  # one writer per run folder: the second run opens the store once the first is done
        again = Runner(task, tmp_path / "run", latency_probe=1)
        try:
            repeat = again.run()
        finally:
            again.store.close()
    finally:
        runner.store.close()
    rows = {r["name"]: r for r in data["levers"]}
    assert list(rows) == ["prompt@served", "prompt@local", "lora@local"]
    assert rows["prompt@served"]["model"] == "served" and rows["lora@local"]["lever"] == "lora"
    assert rows["prompt@served"]["classification_path"] == "first_token_logprobs"
    assert rows["prompt@local"]["classification_path"] == "option_loglik"
    # Each row priced on its own: the server by the hour (wall time per answer), the local model by CPU time.
    assert rows["prompt@served"]["price"]["server_hour_usd"] == 1.2
    assert rows["prompt@served"]["cost"]["per_1k_queries_usd"] > 0
    assert served_backend.price_per_second_usd() == pytest.approx(1.2 / 3600)
    assert rows["lora@local"]["cost"]["setup_usd"] > 0
    assert set(data["verdict"]["ranking"]) == set(rows)
    # A second run recomputes nothing: every row's answers come from the store.
    assert [lv.computed for lv in repeat.levers] == [0, 0, 0]


def test_validate_checks_lever_at_model_rows(make_task):
    from click.testing import CliRunner

    from advisor.cli import main

    settings = "models:\n  api: openai:gpt-4o-mini\n  local: hf:smollm2-135m-instruct\n"
    # The OpenAI API needs a key; validate now checks it is set, as the run does (never its value).
    ok = CliRunner().invoke(main, ["validate", str(make_task(settings, levers="[prompt@api, lora@local]"))],
                            env={"OPENAI_API_KEY": "sk-test-unused"})
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, ["validate", str(make_task(settings, levers="[lora@api]", folder="bad"))])
    assert bad.exit_code == 2 and "needs a local 'hf:' model" in bad.output
