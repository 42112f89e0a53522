"""The local backend against plain transformers computations on the real model."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from advisor.types import OPTION_RANKINGS, GenerationParams, Request
from tests.naive_ranking import first_token_pick, sums, token_logps

pytestmark = pytest.mark.slow

SYSTEM = ("Classify the question by the type of answer it expects. ABBR abbreviation, DESC description, "
          "ENTY entity, HUM person, LOC location, NUM number. Answer with the label only.")
QUESTIONS = ["What is the capital of France?", "Who wrote Hamlet?", "How many legs does a spider have?",
             "What does NASA stand for?", "Why is the sky blue?"]
LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def _requests(system=SYSTEM):
    return [Request(str(i), [{"role": "system", "content": system}, {"role": "user", "content": f"Question: {q}"}],
                    options=LABELS) for i, q in enumerate(QUESTIONS)]


def _naive_scores(backend, request):
    """log P(option + eos | prompt) per option, one full forward pass per option."""
    return sums(token_logps(backend, request))


@pytest.mark.parametrize("system", [SYSTEM, "Type?"])  # long shared prefix (cached) and short (not)
def test_score_options_equals_naive_likelihood(hf_backend, system):
    requests = _requests(system)
    got = hf_backend.score_options(requests, GenerationParams(batch_size=3, option_ranking="sum"))
    for r, g in zip(requests, got):
        naive = _naive_scores(hf_backend, r)
        assert g.option_scores == pytest.approx(naive, abs=2e-3)
        assert g.text == LABELS[max(range(len(LABELS)), key=lambda j: naive[j])]
        assert g.tokens_in == len(hf_backend.prompt_ids(r.messages))


def test_every_ranking_method_is_its_formula_over_the_naive_likelihoods(hf_backend):
    """calibrated: log P(option | prompt) - log P(option | content-free prompt); mean: per token;
    first_token: the first token's log-probability; each from the same per-token scores."""
    requests = _requests()
    for r in requests:
        r.content_free = [r.messages[0], {"role": "user", "content": "Question: N/A"}]
    per_token = [token_logps(hf_backend, r) for r in requests]
    naive = [sums(tokens) for tokens in per_token]
    free = _naive_scores(hf_backend, replace(requests[0], messages=requests[0].content_free))
    tokens = [len(hf_backend.tokenizer.encode(o, add_special_tokens=False)) + 1 for o in LABELS]
    calibrated = hf_backend.score_options(requests, GenerationParams(option_ranking="calibrated"))
    mean = hf_backend.score_options(requests, GenerationParams(option_ranking="mean"))
    first = hf_backend.score_options(requests, GenerationParams(option_ranking="first_token"))
    for i in range(len(requests)):
        assert calibrated[i].option_scores == pytest.approx([a - b for a, b in zip(naive[i], free)], abs=3e-3)
        assert mean[i].option_scores == pytest.approx([a / n for a, n in zip(naive[i], tokens)], abs=2e-3)
        assert calibrated[i].text == LABELS[max(range(len(LABELS)), key=lambda j: naive[i][j] - free[j])]
        pick, first_logps = first_token_pick(per_token[i], LABELS)
        assert first[i].option_scores == pytest.approx(first_logps, abs=2e-3)
        assert first[i].text == pick
        assert calibrated[i].tokens_in == len(hf_backend.prompt_ids(requests[i].messages))


def test_first_token_picks_by_the_first_token_then_the_whole_option_among_those_sharing_it(hf_backend):
    """Two options share their first token ("New"): the first token picks the group, the whole
    log-likelihood the member. On these questions first_token and sum disagree, so the check tells
    the two formulas apart."""
    options = ["New York", "New Delhi", "Paris"]
    ids = [hf_backend.tokenizer.encode(o, add_special_tokens=False) for o in options]
    assert ids[0][0] == ids[1][0] != ids[2][0]  # the case under test
    questions = ["Where is Paris?", "Is the sky blue?", "Which city is in India?", "Which city is in the USA?"]
    requests = [Request(str(i), [{"role": "user", "content": q}], options=options) for i, q in enumerate(questions)]
    got = hf_backend.score_options(requests, GenerationParams(option_ranking="first_token"))
    by_sum = hf_backend.score_options(requests, GenerationParams(option_ranking="sum"))
    picks = [first_token_pick(token_logps(hf_backend, r), options)[0] for r in requests]
    assert [g.text for g in got] == picks
    assert [g.text for g in got] != [g.text for g in by_sum]
    assert len({p for p in picks if p.startswith("New")}) == 2  # both members of the shared group win somewhere


def test_the_alternatives_recorded_beside_an_answer_are_what_each_method_picks(hf_backend):
    """Every method ranks the same log-likelihoods, so the answer records, for free, what every
    other method would have picked; each must equal a real call with that method."""
    requests = _requests()
    got = {m: hf_backend.score_options(requests, GenerationParams(option_ranking=m)) for m in OPTION_RANKINGS}
    for i in range(len(requests)):
        alt = got["calibrated"][i].info["ranking_alternatives"]
        assert set(alt) == set(OPTION_RANKINGS) - {"calibrated"}
        assert alt == {m: got[m][i].text for m in alt}
        # Without the content-free pass the calibrated methods are not offered as alternatives.
        assert set(got["sum"][i].info["ranking_alternatives"]) == {"mean", "first_token"}


def test_context_window_and_token_count(hf_backend):
    [r] = _requests()[:1]
    assert hf_backend.context_window == 8192
    assert hf_backend.count_tokens(r) == len(hf_backend.prompt_ids(r.messages)) > 0


def test_generate_is_deterministic_across_batch_sizes(hf_backend):
    reqs = [Request(str(i), [{"role": "user", "content": q}], max_new_tokens=12) for i, q in enumerate(QUESTIONS)]
    a = hf_backend.generate(reqs, GenerationParams(batch_size=5))
    b = hf_backend.generate(reqs, GenerationParams(batch_size=1))
    assert [g.text for g in a] == [g.text for g in b]
    assert all(0 < g.tokens_out <= 12 for g in a)
    assert "Paris" in a[0].text


def test_converted_model_matches_the_gguf(loaded_model):
    """The cached safetensors copy gives the same logits as loading the GGUF directly."""
    from transformers import AutoModelForCausalLM

    from advisor.backends.hf import EMBEDDED_GGUF, _embedded_gguf

    gguf = _embedded_gguf()
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=EMBEDDED_GGUF, dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.inference_mode():
        assert torch.allclose(direct(ids).logits, loaded_model.model(ids).logits, atol=1e-5)
    assert (loaded_model.path / "advise.json").is_file()
    assert loaded_model.identity.startswith("hf:smollm2-135m-instruct@")
