"""Runner bookkeeping with a small counting backend: caching, invalidation, leakage.

These check what the runner does with answers, not the answers; the real model runs
the same paths in test_cli.py and test_prompt_levers.py.
"""

from __future__ import annotations

import json

import pytest

from advisor.runner import Runner
from advisor.spec import load_task
from advisor.types import Backend, Generation, GenerationParams, Request


class CountingBackend(Backend):
    """Answers with the first option (or echoes the input); records every request it sees."""

    identity = "counting-backend@1"

    def __init__(self) -> None:
        self.seen: list[Request] = []

    def price_per_second_usd(self) -> float:
        return 1.0

    def score_options(self, requests: list[Request], params: GenerationParams, on_batch=None) -> list[Generation]:
        self.seen += requests
        return [Generation(r.options[0], 10, 1, 0.01, [0.0] * len(r.options)) for r in requests]

    def generate(self, requests: list[Request], params: GenerationParams, on_batch=None) -> list[Generation]:
        self.seen += requests
        return [Generation(r.messages[-1]["content"], 10, 3, 0.02) for r in requests]


TASK = """\
name: tiny
kind: classification
labels: [A, B]
data: {train: train.jsonl, eval: eval.jsonl}
prompt: {system: "Pick.", template: "Q: {{ input }}"}
target: {metric: accuracy, threshold: 0.5}
levers: [prompt-few-shot, prompt]
lever_options:
  prompt-few-shot: {k: 2, selection: fixed}
"""


@pytest.fixture
def tiny(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "train.jsonl", [{"id": f"t{i}", "input": f"train {i}", "output": "AB"[i % 2]}
                                           for i in range(6)] + [{"id": "leak", "input": "EVAL 1", "output": "A"}])
    write_jsonl(tmp_path / "eval.jsonl", [{"id": f"e{i}", "input": f"eval {i}", "output": "AB"[i % 2]}
                                          for i in range(10)])
    (tmp_path / "task.yaml").write_text(TASK)
    return tmp_path


def _run(folder, backend, **overrides):
    runner = Runner(load_task(folder / "task.yaml", overrides), folder / "run", latency_probe=2)
    runner._backend = backend
    try:
        return runner.run()
    finally:
        runner.store.close()


def test_levers_run_cheapest_first_and_cache_everything(tiny):
    backend = CountingBackend()
    result = _run(tiny, backend)
    assert [lv.name for lv in result.levers] == ["prompt", "prompt-few-shot"]  # by rung, not file order
    assert [lv.computed for lv in result.levers] == [10, 10]
    assert result.levers[0].metrics["accuracy"].value == 0.5  # always "A" on alternating labels
    calls = len(backend.seen)
    again = _run(tiny, backend)
    assert [lv.computed for lv in again.levers] == [0, 0]
    assert len(backend.seen) == calls  # not one request: predictions and latency probes are cached


def test_a_prompt_change_recomputes_exactly_the_affected_entries(tiny, write_jsonl):
    backend = CountingBackend()
    _run(tiny, backend)
    # One eval input changes: one prediction per lever is recomputed.
    rows = [json.loads(x) for x in (tiny / "eval.jsonl").read_text().splitlines()]
    rows[3]["input"] = "eval three, reworded"
    write_jsonl(tiny / "eval.jsonl", rows)
    result = _run(tiny, backend)
    assert [lv.computed for lv in result.levers] == [1, 1]
    # A wrong gold label is corrected: the run is rescored, nothing is recomputed.
    assert result.levers[0].metrics["accuracy"].value == 0.5
    rows[3]["output"] = "A"
    write_jsonl(tiny / "eval.jsonl", rows)
    relabelled = _run(tiny, backend)
    assert [lv.computed for lv in relabelled.levers] == [0, 0]
    assert relabelled.levers[0].metrics["accuracy"].value == 0.6
    # A field the template does not use is added: the prompts are the same, nothing is recomputed.
    write_jsonl(tiny / "eval.jsonl", [{**r, "reviewer": "kim"} for r in rows])
    assert [lv.computed for lv in _run(tiny, backend).levers] == [0, 0]
    # Two eval items ask the same thing: answered once, each keeps its own id.
    write_jsonl(tiny / "eval.jsonl", rows + [{**rows[3], "id": "e3-again"}])
    twice = _run(tiny, backend)
    assert [lv.computed for lv in twice.levers] == [0, 0]
    assert [p.example_id for p in twice.levers[0].predictions][-2:] == ["e9", "e3-again"]
    fresh = {**rows[3], "input": "asked twice"}
    write_jsonl(tiny / "eval.jsonl", rows + [{**fresh, "id": "n1"}, {**fresh, "id": "n2"}])
    assert [lv.computed for lv in _run(tiny, backend).levers] == [1, 1]
    write_jsonl(tiny / "eval.jsonl", rows)
    # A train example that is not a shot changes: nothing is recomputed.
    train = [json.loads(x) for x in (tiny / "train.jsonl").read_text().splitlines()]
    train[5]["input"] = "train five, reworded"
    write_jsonl(tiny / "train.jsonl", train)
    assert [lv.computed for lv in _run(tiny, backend).levers] == [0, 0]
    # A shot changes: every few-shot prompt changes, zero-shot prompts do not.
    train[0]["input"] = "train zero, reworded"
    write_jsonl(tiny / "train.jsonl", train)
    assert [lv.computed for lv in _run(tiny, backend).levers] == [0, 10]
    # The template changes: everything.
    assert [lv.computed for lv in _run(tiny, backend, **{"prompt.template": "Question: {{ input }}"}).levers] == [10, 10]


def test_eval_examples_never_reach_a_prompt_as_shots(tiny):
    backend = CountingBackend()
    result = _run(tiny, backend)
    assert result.data.leakage_removed == ["leak"]
    assert result.record.provenance.data.leakage_removed == ["leak"]
    eval_inputs = {f"q: eval {i}" for i in range(10)}
    for request in backend.seen:
        shown = [m["content"].lower() for m in request.messages[:-1] if m["role"] == "user"]
        assert not eval_inputs & set(shown)
        assert "q: eval 1" not in shown
    few = [r for r in backend.seen if len(r.messages) > 2]
    assert few and all(r.context["shots"] == ["t0", "t1"] for r in few)


def test_unknown_lever_option_is_named(tiny):
    with pytest.raises(Exception, match=r"lever_options.prompt-few-shot.kk"):
        _run(tiny, CountingBackend(), **{"lever_options": {"prompt-few-shot": {"kk": 1}}})


def test_levers_declare_their_family_and_capabilities_and_the_declaration_is_what_is_read(monkeypatch):
    from advisor.errors import InputError
    from advisor.registry import fine_tunes, load_lever
    from advisor.types import Lever

    declared = {  # name: (family, option_ranking, keeps an index, can be prepared on a subset)
        "prompt": ("prompt", None, False, False), "prompt-few-shot": ("prompt", None, False, False),
        "prompt-search": ("prompt", None, False, False), "rag": ("retrieval", None, True, False),
        "lora": ("fine-tuning", "sum", False, True), "lora-rag": ("fine-tuning", "sum", False, True),
    }
    for name, (family, ranking, index, subsets) in declared.items():
        lever = load_lever(name)
        assert (lever.family, lever.option_ranking, lever.index is not None,
                lever.prepare_on is not None) == (family, ranking, index, subsets), name

    # Retrieved text the dry-run estimate counts: declared by the levers that retrieve (lora-rag too).
    retrieved = {n: load_lever(n).retrieved_chars(load_lever(n).options_model()) for n in declared}
    assert retrieved == {"prompt": 0, "prompt-few-shot": 0, "prompt-search": 0, "rag": 4000, "lora": 0,
                         "lora-rag": 4000}

    class Cheap(Lever):  # a low rung, yet it trains weights: the declaration wins over the rung
        name, rung, family = "cheap", 0.5, "fine-tuning"

    class Odd(Lever):
        name, rung, family = "odd", 1, "magic"

    assert fine_tunes(Cheap())
    from types import SimpleNamespace

    import advisor.registry as registry

    monkeypatch.setattr(registry, "available", lambda: {"odd": SimpleNamespace(load=lambda: Odd)})
    with pytest.raises(InputError, match="magic"):  # an undeclared family is refused when the lever loads
        load_lever("odd")
    assert Cheap().held_out(None, None, None) is None and Cheap().report_details(None, {}) == {}


class ApiBackend(CountingBackend):
    """An API model's shape: answers arrive one by one (`answers`), each timed by the backend."""

    identity = "api-backend@1"
    remote = True

    def answers(self, requests: list[Request], params: GenerationParams):
        for i, g in enumerate(self.score_options(requests, params)):
            g.latency_s = 0.25
            yield i, g


def test_an_api_models_latency_comes_from_its_own_answers_and_is_never_bought_twice(tiny):
    import sqlite3

    descriptions: list[str] = []

    def progress(description: str, total: int):
        descriptions.append(description)
        return lambda *a, **k: None

    def run(backend):
        runner = Runner(load_task(tiny / "task.yaml"), tiny / "run", latency_probe=4, progress=progress)
        runner._backend = backend
        try:
            return runner.run(["prompt"]), runner.predictor.probe_requests
        finally:
            runner.store.close()

    backend = ApiBackend()
    result, probed = run(backend)
    assert len(backend.seen) == 10 and probed == {}  # the eval items only: no latency probe sent
    assert result.levers[0].cost.latency_ms_p50 == pytest.approx(250.0)  # the answers' own timing
    run(backend)
    assert len(backend.seen) == 10  # all cached, latency included
    db = sqlite3.connect(tiny / "run" / "advise.sqlite")
    with db:
        db.execute("DELETE FROM latencies")  # answers as an older version stored them: no latency
    db.close()
    _, probed = run(backend)
    assert len(backend.seen) == 14 and probed == {"prompt": 4}
    assert "prompt: latency probe sends 4 requests one at a time (answers stored by an older version carry " \
           "no latency)" in descriptions
