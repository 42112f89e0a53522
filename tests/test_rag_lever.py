"""The RAG lever on the real model, real embeddings and a real Chroma store."""

from __future__ import annotations

import json

import pytest

from advisor.runner import Runner
from advisor.spec import load_task

pytestmark = pytest.mark.slow

SRC = "sample_tasks/countries/data"
COUNTRIES = ["no", "se", "fi", "dk", "is", "ee", "lv", "lt", "de", "fr", "ca", "jp"]


@pytest.fixture
def countries_small(tmp_path):
    """Twelve countries' documents, eval questions about six of them, both knowledge versions."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / SRC
    d = tmp_path / "countries"
    (d / "data").mkdir(parents=True)
    for name in ("knowledge", "knowledge_v2"):
        docs = [json.loads(x) for x in (root / f"{name}.jsonl").read_text().splitlines()]
        keep = [doc for doc in docs if doc["id"].removeprefix("country-") in COUNTRIES]
        (d / "data" / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in keep))
    rows = [json.loads(x) for x in (root / "eval.jsonl").read_text().splitlines()]
    rows += [json.loads(x) for x in (root / "train.jsonl").read_text().splitlines()]
    ev = [r for r in rows if r["sources"][0].removeprefix("country-") in COUNTRIES and r["template"] == "numeric"]
    (d / "data" / "eval.jsonl").write_text("".join(json.dumps(x) + "\n" for x in ev[:6]))
    (d / "data" / "train.jsonl").write_text(json.dumps({"input": "What is the alpha-2 code of Peru?",
                                                        "output": "PE"}) + "\n")
    (d / "task.yaml").write_text(
        "name: countries-small\nkind: qa\n"
        "data: {train: data/train.jsonl, eval: data/eval.jsonl, knowledge: data/knowledge.jsonl}\n"
        "prompt: {system: 'Answer with the number only.', template: '{{ input }}', max_new_tokens: 32}\n"
        "target: {metric: exact_match, threshold: 0.9}\nlevers: [rag]\nlever_options: {rag: {k: 2}}\n"
    )
    return d / "task.yaml"


def _run(task_file, workdir, backend, cache_dir, overrides=None):
    runner = Runner(load_task(task_file, overrides), workdir, cache_dir=cache_dir, latency_probe=2)
    runner._backend = backend
    try:
        return runner.run()
    finally:
        runner.store.close()


def test_rag_retrieves_cites_and_measures_retrieval(countries_small, tmp_path, hf_backend):
    result = _run(countries_small, tmp_path / "run", hf_backend, tmp_path / "cache")
    rag = result.levers[0]
    eval_ = result.data.eval
    by_hand = []
    for ex, p in zip(eval_, rag.predictions):
        assert len(p.context["chunks"]) == 2 and len(p.context["sources"]) == 2
        gold = ex.fields["sources"][0]
        by_hand.append(1.0 if gold in p.context["sources"] else 0.0)
    assert rag.metrics["retrieval_recall@2"].value == pytest.approx(sum(by_hand) / len(by_hand))
    assert rag.metrics["retrieval_recall@2"].value >= 0.8  # the country's name is in its question
    assert 0 < rag.metrics["retrieval_mrr"].value <= 1
    info = rag.artifact.info
    assert info["index"]["total_chunks"] == 12 and info["index"]["embedded_now"] == 12
    assert info["index"]["bytes"] > 0
    assert rag.cost.setup_usd > 0 and rag.cost.per_1k_queries_usd > 0
    # The retrieved text is what the model saw: each request's prompt holds its chunks' documents.
    from baselines.rag import RagLever

    requests = RagLever().requests(rag.artifact, eval_)
    for r, p in zip(requests, rag.predictions):
        assert r.context["chunks"] == p.context["chunks"]
        assert all(f"[{src}]" in r.messages[-1]["content"] for src in p.context["sources"])
    # With the answer in context even a 135M model gets some numeric codes right.
    assert rag.metrics["token_f1"].value > 0


def test_swapping_knowledge_reindexes_only_changes_and_answers_follow(countries_small, tmp_path, hf_backend):
    cache = tmp_path / "cache"
    first = _run(countries_small, tmp_path / "run", hf_backend, cache).levers[0]
    again = _run(countries_small, tmp_path / "run", hf_backend, cache).levers[0]
    assert again.artifact.info["index"]["embedded_now"] == 0 and again.computed == 0
    v2 = _run(countries_small, tmp_path / "run", hf_backend, cache,
              {"data.knowledge": "data/knowledge_v2.jsonl"}).levers[0]
    old = {json.loads(x)["id"]: x for x in (countries_small.parent / "data/knowledge.jsonl").read_text().splitlines()}
    new = {json.loads(x)["id"]: x for x in (countries_small.parent / "data/knowledge_v2.jsonl").read_text().splitlines()}
    changed = {i for i in old if old[i] != new[i]}
    assert changed, "the fixture should include countries whose facts change in v2"
    assert v2.artifact.info["index"]["embedded_now"] == len(changed)  # one chunk per short document
    assert v2.artifact.info["index"]["removed_now"] == len(changed)
    # Exactly the questions whose retrieved chunks changed were answered again.
    moved = sum(1 for a, b in zip(first.predictions, v2.predictions) if a.context["chunks"] != b.context["chunks"])
    assert v2.computed == moved
    # Gold sources corrected and a metadata field added (the template does not use it): nothing is
    # answered again, and retrieval is scored against the new gold, not the cached one.
    eval_file = countries_small.parent / "data/eval.jsonl"
    rows = [json.loads(x) for x in eval_file.read_text().splitlines()]
    hit = 1.0 if rows[0]["sources"][0] in v2.predictions[0].context["sources"] else 0.0
    rows[0]["sources"] = ["country-nowhere"]
    eval_file.write_text("".join(json.dumps({**r, "reviewed": True}) + "\n" for r in rows))
    regraded = _run(countries_small, tmp_path / "run", hf_backend, cache,
                    {"data.knowledge": "data/knowledge_v2.jsonl"}).levers[0]
    assert regraded.computed == 0
    recall = v2.metrics["retrieval_recall@2"].value
    assert regraded.metrics["retrieval_recall@2"].value == pytest.approx(recall - hit / len(rows))


def test_rag_over_examples_for_classification_never_shows_eval(trec_small, tmp_path, hf_backend):
    opts = {"levers": ["rag"], "lever_options": {"rag": {"k": 3}}}
    runner = Runner(load_task(trec_small, opts), tmp_path / "run", cache_dir=tmp_path / "cache", limit=6,
                    latency_probe=0)
    runner._backend = hf_backend
    try:
        result = runner.run()
    finally:
        runner.store.close()
    rag = result.levers[0]
    assert rag.artifact.info["source"] == "examples"
    train_ids = {e.id for e in result.data.train}
    eval_ids = {e.id for e in result.data.eval}
    for p in rag.predictions:
        assert set(p.context["sources"]) <= train_ids and not set(p.context["sources"]) & eval_ids
    assert all(p.output in {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"} for p in rag.predictions)


def test_rag_through_a_chroma_server_matches_the_embedded_store(trec_small, tmp_path, hf_backend, chroma_server):
    """A team's shared index: the same lever against `chroma run`, same retrieval as embedded."""
    def run(opts, where):
        overrides = {"levers": ["rag"], "lever_options": {"rag": {"k": 3, **opts}}}
        runner = Runner(load_task(trec_small, overrides), tmp_path / where, cache_dir=tmp_path / "cache",
                        limit=4, latency_probe=0)
        runner._backend = hf_backend
        try:
            return runner.run().levers[0]
        finally:
            runner.store.close()

    served = run({"chroma_url": chroma_server}, "served")
    local = run({}, "local")
    assert served.artifact.info["index"]["chroma_url"] == chroma_server
    assert served.artifact.info["index"]["bytes"] is None  # a server's disk is not ours to measure
    assert [p.context["sources"] for p in served.predictions] == [p.context["sources"] for p in local.predictions]
    assert [p.output for p in served.predictions] == [p.output for p in local.predictions]


def test_unreachable_chroma_server_is_bad_input(trec_small, tmp_path):
    from click.testing import CliRunner

    from advisor.cli import main

    r = CliRunner().invoke(main, ["run", str(trec_small), "--out", str(tmp_path / "o"), "--lever", "rag",
                                  "--set", "levers=[rag]", "--set", "lever_options={rag: {chroma_url: 'http://127.0.0.1:9'}}"])
    assert r.exit_code == 2, r.output
    assert "cannot reach the Chroma server at http://127.0.0.1:9" in r.output
