"""The prompt levers on the real model and real TREC data."""

from __future__ import annotations

import pytest

from advisor.data import load_dataset
from advisor.ranking import answers_by_method
from advisor.runner import Runner
from advisor.spec import load_task
from baselines.prompt import ZeroShotLever
from tests.naive_ranking import first_token_pick, sums, token_logps

pytestmark = pytest.mark.slow


def _predictions(task_file, workdir, hf_backend, overrides=None, levers=None):
    runner = Runner(load_task(task_file, overrides), workdir, limit=8, latency_probe=0)
    runner._backend = hf_backend  # the session's model: loaded once for all tests
    try:
        result = runner.run(levers)
    finally:
        runner.store.close()
    return {lv.name: lv for lv in result.levers}


def _argmax(values):
    return max(range(len(values)), key=lambda j: values[j])


def test_same_run_twice_gives_the_same_predictions(trec_small, tmp_path, hf_backend):
    a = _predictions(trec_small, tmp_path / "a", hf_backend)
    b = _predictions(trec_small, tmp_path / "b", hf_backend)
    for name in ("prompt", "prompt-few-shot"):
        assert a[name].computed == b[name].computed == 8
        assert [p.raw for p in a[name].predictions] == [p.raw for p in b[name].predictions]
        for pa, pb in zip(a[name].predictions, b[name].predictions):
            assert pa.context["option_scores"] == pytest.approx(pb.context["option_scores"], abs=1e-4)
    # Each answer is what its method picks from the real model's log-likelihoods, computed here by
    # hand (one forward pass per label): the served answer under the row's method, and the picks
    # recorded beside it for sum, calibrated and first_token.
    lever = a["prompt"]
    eval_by_id = {ex.id: ex for ex in load_dataset(load_task(trec_small), limit=8).eval}
    requests = ZeroShotLever().requests(lever.artifact, [eval_by_id[p.example_id] for p in lever.predictions])
    method = lever.extra["option_ranking"]["method"]
    free: dict[str, list[float]] = {}  # the content-free prompt is the same for every item
    for p, r in zip(lever.predictions, requests):
        tokens = token_logps(hf_backend, r)
        key = repr(r.content_free)
        if key not in free:
            free[key] = sums(token_logps(hf_backend, r, r.content_free))
        calibrated = [s - f for s, f in zip(sums(tokens), free[key])]
        by_hand = {"sum": r.options[_argmax(sums(tokens))], "calibrated": r.options[_argmax(calibrated)],
                   "first_token": first_token_pick(tokens, r.options)[0]}
        answers = answers_by_method(p)
        assert {m: answers[m] for m in by_hand} == by_hand
        assert p.raw == p.output == answers[method]


def test_random_selection_is_seeded(trec_small, tmp_path, hf_backend):
    def shots(seed, where):
        opts = {"lever_options": {"prompt-few-shot": {"k": 3, "selection": "random", "seed": seed}}}
        lv = _predictions(trec_small, tmp_path / where, hf_backend, opts, ["prompt-few-shot"])["prompt-few-shot"]
        return lv.artifact.info["shot_ids"]

    assert shots(1, "a") == shots(1, "b")
    assert shots(1, "a") != shots(2, "c")


def test_fixed_selection_covers_the_labels(trec_small, tmp_path, hf_backend):
    opts = {"lever_options": {"prompt-few-shot": {"k": 6, "selection": "fixed"}}}
    lv = _predictions(trec_small, tmp_path, hf_backend, opts, ["prompt-few-shot"])["prompt-few-shot"]
    request_shots = lv.predictions[0].context["shots"]
    assert len(request_shots) == 6
    assert request_shots == lv.artifact.info["shot_ids"]



def test_similar_selection_retrieves_near_train_examples_from_a_reused_index(trec_small, tmp_path, hf_backend):
    from advisor.data import load_dataset, normalize_text
    from advisor.spec import load_task

    opts = {"lever_options": {"prompt-few-shot": {"k": 3, "selection": "similar"}}}
    lv = _predictions(trec_small, tmp_path / "a", hf_backend, opts, ["prompt-few-shot"])["prompt-few-shot"]
    retriever = lv.artifact.private["similar"]
    assert retriever.stats.embedded_chunks == 60  # the whole train pool, once
    pool = retriever.pool
    eval_by_id = {ex.id: ex for ex in load_dataset(load_task(trec_small)).eval}
    eval_inputs = {normalize_text(ex.input) for ex in eval_by_id.values()}
    for p in lv.predictions:
        shots = p.context["shots"]
        assert len(shots) == 3 and len(set(shots)) == 3
        assert all(s in pool for s in shots)  # train only
        assert not {normalize_text(pool[s].input) for s in shots} & eval_inputs
    # Nearest means nearest: the last shot (shown right before the question) is the item's best
    # match in the pool, as exact search over the same embeddings finds it.
    emb = retriever.index.embedder
    ids = list(pool)
    vectors = emb.encode([pool[i].input for i in ids])
    for p in lv.predictions:
        q = emb.encode([eval_by_id[p.example_id].input])[0]
        assert p.context["shots"][-1] == ids[int((vectors @ q).argmax())]
    # A second run (new run folder, same cache) finds the index up to date: nothing re-embedded.
    again = _predictions(trec_small, tmp_path / "b", hf_backend, opts, ["prompt-few-shot"])["prompt-few-shot"]
    assert again.artifact.private["similar"].stats.embedded_chunks == 0
    assert [p.context["shots"] for p in again.predictions] == [p.context["shots"] for p in lv.predictions]
