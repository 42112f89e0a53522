"""The `openai:` backend against a real llama.cpp server (xllamacpp) on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from advisor.backends.openai import OpenAIBackend, local_tokenizer
from advisor.modelspec import ModelChoice, OpenAISettings
from advisor.runner import Runner
from advisor.spec import load_task
from advisor.store import RunStore
from advisor.types import GenerationParams, Request

pytestmark = pytest.mark.slow

LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def _backend(server, **settings) -> OpenAIBackend:
    return OpenAIBackend(ModelChoice(None, "openai:smollm2", OpenAISettings(base_url=server.base_url, **settings)))


def _chat(q: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer in a few words."}, {"role": "user", "content": q}]


def test_generation_is_greedy_counts_tokens_and_keeps_input_order(llama_server):
    backend = _backend(llama_server, max_concurrency=3)
    questions = ["What is the capital of France?", "Name a colour.", "What is 2 + 2?", "Say hello."]
    requests = [Request(f"q{i}", _chat(q), max_new_tokens=8) for i, q in enumerate(questions)]
    first = backend.generate(requests, GenerationParams())
    again = backend.generate(list(reversed(requests)), GenerationParams())
    assert [g.text for g in first] == [g.text for g in reversed(again)]  # greedy: same answer, in input order
    assert all(g.text for g in first)
    assert all(g.tokens_in > 10 and 0 < g.tokens_out <= 8 for g in first)  # from the response's `usage`
    assert backend.identity == f"openai:smollm2@{llama_server.base_url}"
    # The local tokenizer counts the same prompt the server counted (the chat template applied).
    counted = _backend(llama_server, tokenizer="hf:smollm2-135m-instruct").count_tokens(requests[0])
    assert abs(counted - first[0].tokens_in) <= 2


def test_prompt_tokens_the_server_served_from_its_cache_are_recorded_and_priced_as_cached(llama_server):
    from advisor.modelspec import Price
    from advisor.types import Prediction

    price = Price(input_per_1m_usd=1.0, output_per_1m_usd=2.0, cached_input_per_1m_usd=0.25)
    backend = OpenAIBackend(ModelChoice(None, "openai:smollm2", OpenAISettings(base_url=llama_server.base_url,
                                                                              max_concurrency=1)),
                            price=price, price_source="test")
    system = "You sort questions by the kind of answer they expect, and answer with one label. " * 8
    questions = ["What does NASA stand for?", "Who wrote Hamlet?", "How tall is Everest?"]
    requests = [Request(f"q{i}", [{"role": "system", "content": system}, {"role": "user", "content": q}],
                        max_new_tokens=2) for i, q in enumerate(questions)]
    answers = backend.generate(requests, GenerationParams())  # one at a time: each finds the last one's cache
    # llama.cpp's server reports usage.prompt_tokens_details.cached_tokens: the system turn, read again.
    assert all(100 < g.tokens_in_cached < g.tokens_in for g in answers[1:])
    preds = [Prediction(r.example_id, g.text, g.text, g.tokens_in, g.tokens_out, 0.0,
                        tokens_in_cached=g.tokens_in_cached) for r, g in zip(requests, answers)]
    charged = sum((g.tokens_in - g.tokens_in_cached) * 1.0 + g.tokens_in_cached * 0.25 + g.tokens_out * 2.0
                  for g in answers) / 1e6
    assert backend.token_cost_usd(preds) == pytest.approx(charged)
    assert charged < sum(g.tokens_in * 1.0 + g.tokens_out * 2.0 for g in answers) / 1e6
    assert "cached-input price" in backend.price_basis


@pytest.mark.parametrize("path", ["first_token_logprobs", "json_schema_enum", "generate_and_map"])
def test_classification_by_each_path(llama_server, path):
    backend = _backend(llama_server, classification=path)
    requests = [Request(f"q{i}", [{"role": "system", "content": "Reply with one label: " + ", ".join(LABELS)},
                                  {"role": "user", "content": f"Question: {q}\nType:"}], options=LABELS,
                        max_new_tokens=8)
                for i, q in enumerate(["Who wrote Hamlet?", "Where is Kyoto?", "How many legs has a spider?"])]
    out = backend.score_options(requests, GenerationParams())
    for g in out:
        assert g.info["classification_path"] == path
        # An answer is a label, or it is counted as unmappable (and scored wrong): never both, never neither.
        assert (g.text in LABELS) != g.info["unmappable"]
    if path == "first_token_logprobs":
        assert all(g.tokens_out == 1 and g.option_scores is not None for g in out)
        # The chosen label is the one with the highest first-token log-probability.
        for g in out:
            scored = [(s, lab) for s, lab in zip(g.option_scores, LABELS) if s is not None]
            assert scored and max(scored)[1] == g.text
    if path == "json_schema_enum":  # the enum keeps a greedy answer inside the label set
        assert all(g.text in LABELS for g in out)


def test_label_tokens_come_from_the_servers_tokenizer_and_decide_the_default_path(llama_server):
    backend = _backend(llama_server)
    lt = backend.label_tokens(LABELS)
    assert lt is not None and lt.exact and "/tokenize" in lt.source
    # The server splits ABBR as "AB" + "BR", as the model's own tokenizer does (transformers, from the GGUF).
    local = local_tokenizer("smollm2")
    for label in LABELS:
        first = local.encode(label, add_special_tokens=False)[0]
        assert lt.label_of(local.decode([first]), first) == LABELS.index(label)
    assert lt.label_of("A", 49) is None and lt.label_of("Ab") is None
    assert backend.classification_paths(LABELS) == ("first_token_logprobs", "json_schema_enum", "generate_and_map")
    # Two labels beginning with the same token ("New"): the first token cannot tell them apart.
    assert backend.classification_path(["New York", "New Delhi", "Paris"]) == "json_schema_enum"
    assert backend.classification_notes(["New York", "New Delhi", "Paris"]) == [
        "first_token_logprobs: 'New York' and 'New Delhi' begin with the same token 'New'"]
    # The task can force one path: then it is the only one.
    assert _backend(llama_server, classification="generate_and_map").classification_paths(LABELS) == \
        ("generate_and_map",)


def test_run_records_path_unmappable_and_stores_every_answer(llama_server, make_task, tmp_path):
    task_file = make_task(f"model: openai:smollm2\nopenai: {{base_url: '{llama_server.base_url}', "
                          "classification: generate_and_map, max_concurrency: 4}\n", n_eval=6)
    task = load_task(task_file)
    runner = Runner(task, tmp_path / "run", latency_probe=2, params=GenerationParams(max_new_tokens=8))
    try:
        result = runner.run()
    finally:
        runner.store.close()
    row = result.to_json()["levers"][0]
    assert row["name"] == "prompt" and row["lever"] == "prompt" and row["model"] == "openai:smollm2"
    assert row["classification_path"] == "generate_and_map"
    preds = result.levers[0].predictions
    assert row["unmappable"] == sum(p.output not in LABELS for p in preds)
    # Self-served with no price given: the cost is unknown, stored as null, never 0.
    assert row["cost"]["per_1k_queries_usd"] is None and row["cost"]["first_year_usd"] is None
    assert row["price"]["source"] == "unknown"
    assert any("price unknown" in n for n in result.record.verdict.notes)
    store = RunStore(tmp_path / "run" / "advise.sqlite")
    assert store.count_predictions("prompt") == 6
    store.close()
    json.dumps(result.to_json())  # results.json stays plain JSON


def _run(task_file, out):
    runner = Runner(load_task(task_file), out, latency_probe=0)
    try:
        return runner.run()
    finally:
        runner.store.close()


def test_path_chosen_on_dev_off_label_recorded_and_calibration_applied(llama_server, make_task, tmp_path):
    task_file = make_task(f"model: openai:smollm2\nopenai: {{base_url: '{llama_server.base_url}', "
                          "max_concurrency: 4}\nscoring: {option_ranking: calibrated}\n", n_eval=12, n_train=40)
    result = _run(task_file, tmp_path / "run")
    row = result.to_json()["levers"][0]
    choice = row["classification_choice"]
    # Every path the server supports answered the dev split; the default is kept unless beaten beyond noise.
    assert choice["default"] == "first_token_logprobs" and choice["held_out"]["split"] == "dev"
    assert set(choice["held_out"]["scores"]) == {"first_token_logprobs", "json_schema_enum", "generate_and_map"}
    assert row["classification_path"] == choice["chosen"]
    off = row["off_label"]
    preds = result.levers[0].predictions
    assert off["items"] == sum(1 for p in preds if p.context["off_label"]) and off["share"] == off["items"] / 12
    if choice["chosen"] == "first_token_logprobs":
        assert [t["exact"] for t in off["label_tokens"]] == [True] and "/tokenize" in off["label_tokens"][0]["source"]
        for p in preds:
            # What the model itself put first is kept; an article or a word's start is no label's token.
            assert p.context["answer"]
            if p.context["answer"] in {"A", "Ab", "An", "The", "L", "N"}:
                assert p.context["off_label"]
            assert p.context["option_ranking"] == "calibrated"
            assert p.context["ranking_alternatives"]["first_token"] in LABELS
        assert "first token" in row["option_ranking"]["reason"]
    # The scorecard shows the share, and a large one is warned about, in the terminal and the report.
    from rich.console import Console

    from advisor.report.scorecard import print_results

    console = Console(record=True, width=160)
    print_results(console, result.record)
    text = console.export_text()
    assert "off-" in text and f"{100 * off['share']:.0f}%" in text
    assert "an API model's at the run's concurrency" in " ".join(text.split())  # how its latency was timed
    if off["share"] > 0.10:
        assert "did not answer with a label" in text
    # The report's scorecard has the same column, and its lever section the share and why the path was kept.
    from advisor.report.sections import scorecard_section

    quality = scorecard_section(result.to_json()).blocks[0]
    assert "off-label" in quality.columns and quality.rows[0][quality.columns.index("off-label")] == \
        f"{100 * off['share']:.0f}%"


def test_calibration_changes_answers_and_a_path_change_asks_again(llama_server, make_task, tmp_path):
    server = f"base_url: '{llama_server.base_url}', max_concurrency: 4"
    first = make_task(f"model: openai:smollm2\nopenai: {{{server}, classification: first_token_logprobs}}\n"
                      "scoring: {option_ranking: first_token}\n", n_eval=16, folder="a")
    plain = _run(first, tmp_path / "run")
    calibrated_file = make_task(f"model: openai:smollm2\nopenai: {{{server}, classification: first_token_logprobs}}\n"
                                "scoring: {option_ranking: calibrated}\n", n_eval=16, folder="b")
    calibrated = _run(calibrated_file, tmp_path / "run")
    a = [p.output for p in plain.levers[0].predictions]
    b = [p.output for p in calibrated.levers[0].predictions]
    assert a != b  # calibration (a content-free request per prompt form) moves some answers
    # A forced method is asked for as it is on an API model (no reference bought for a method that needs
    # none), so forcing another one asks again; under `auto` every method's pick comes with each answer.
    assert plain.levers[0].computed == calibrated.levers[0].computed == 16
    assert all(p.context["ranked_by"] == "calibrated" for p in calibrated.levers[0].predictions)
    assert all("calibrated" not in p.context["ranking_alternatives"] for p in plain.levers[0].predictions)
    # The same run folder with another path: every answer is asked again, under that path.
    other = make_task(f"model: openai:smollm2\nopenai: {{{server}, classification: generate_and_map}}\n",
                      n_eval=16, folder="c")
    again = _run(other, tmp_path / "run")
    assert again.levers[0].computed == 16
    row = again.to_json()["levers"][0]
    assert row["classification_path"] == "generate_and_map"
    assert row["classification_choice"]["why"] == "forced"
    # The backend's unmappable is final: one count, the scorer never maps those answers after all.
    preds = again.levers[0].predictions
    assert row["unmappable"] == sum(p.output is None for p in preds) == sum(p.context["unmappable"] for p in preds)
    assert row["unmappable"] <= row["off_label"]["items"]


def test_embeddings_for_rag_through_the_server(llama_server, make_task, tmp_path):
    task_file = make_task(f"model: openai:smollm2\nopenai: {{base_url: '{llama_server.base_url}'}}\n"
                          "lever_options:\n  rag: {k: 2, source: knowledge, embedding: 'openai:smollm2'}\n",
                          levers="[rag]", kind="countries", n_eval=3, n_train=10)
    task = load_task(task_file)
    runner = Runner(task, tmp_path / "run", cache_dir=tmp_path / "cache", latency_probe=0)
    try:
        result = runner.run()
        again = runner.run()
    finally:
        runner.store.close()
    row = result.to_json()["levers"][0]
    assert "retrieval_recall@2" in row["metrics"]  # gold sources scored against what the API embedder found
    assert all(len(p.context["chunks"]) == 2 for p in result.levers[0].predictions)
    assert again.levers[0].computed == 0  # keyed like the local embedder: nothing re-embedded or re-asked


def test_field_case_07_the_spelling_after_a_labels_first_token_cannot_move_a_served_prediction(
        llama_server, tmp_path):
    """Field case 07 (the same label spelled short and long) through the served model: "other" and
    "other, the message is about something that is not a refund" begin with the same token, and the
    first-token path sees only that token (calibrated by a content-free request of each spelling's
    own prompt), so 0 of 16 predictions may change with the spelling."""
    import shutil
    from pathlib import Path

    case = Path(__file__).resolve().parents[1] / "fixtures" / "field_cases" / "07-label-length"
    folder = tmp_path / "case"
    shutil.copytree(case, folder)
    got = []
    for name in ("task.yaml", "task_long.yaml"):
        task_file = folder / name
        task_file.write_text(task_file.read_text() + f"model: openai:smollm2\nopenai: {{base_url: "
                             f"'{llama_server.base_url}', classification: first_token_logprobs}}\n")
        result = _run(task_file, tmp_path / name)
        preds = result.levers[0].predictions
        assert len(preds) == 16 and all(p.context["classification_path"] == "first_token_logprobs" for p in preds)
        got.append([None if p.output is None else ("other" if p.output.startswith("other") else p.output)
                    for p in preds])
    short, long_ = got
    assert short == long_
