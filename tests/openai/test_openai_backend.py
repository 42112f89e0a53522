"""The `openai:` backend against a real llama.cpp server (xllamacpp) on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from advisor.backends.openai import OpenAIBackend
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


def test_auto_path_picks_first_token_when_labels_start_apart(llama_server):
    backend = _backend(llama_server)
    assert backend.classification_path(LABELS) == "first_token_logprobs"
    assert backend.classification_path(["positive", "positively", "negative"]) == "json_schema_enum"
    local = _backend(llama_server, tokenizer="hf:smollm2-135m-instruct")
    assert local.classification_path(LABELS) in {"first_token_logprobs", "json_schema_enum"}


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
