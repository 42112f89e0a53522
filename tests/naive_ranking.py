"""Label ranking by hand from a real model's logits: one full forward pass per option, the slow, obvious
way, independent of the backend's batched, prefix-cached path and of advisor.ranking (which tests check
against it)."""

from __future__ import annotations

from typing import Any

import torch


def token_logps(backend: Any, request: Any, messages: list[dict[str, str]] | None = None) -> list[list[tuple[int, float]]]:
    """Per option of `request`: [(token id, log P(token | prompt, earlier option tokens))] over the
    option's tokens plus end-of-turn, under `backend.model` (a merged adapter's model included).
    `messages`: another prompt than the request's (a content-free one)."""
    tok, model = backend.tokenizer, backend.model
    prompt = backend.prompt_ids(messages or request.messages)
    out = []
    for option in request.options:
        cont = tok.encode(option, add_special_tokens=False) + [tok.eos_token_id]
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([prompt + cont], device=model.device)).logits[0].float(), -1)
        out.append([(c, logp[len(prompt) - 1 + k, c].item()) for k, c in enumerate(cont)])
    return out


def sums(tokens: list[list[tuple[int, float]]]) -> list[float]:
    """log P(option + end-of-turn | prompt) per option."""
    return [sum(lp for _, lp in option) for option in tokens]


def first_token_pick(tokens: list[list[tuple[int, float]]], options: list[str]) -> tuple[str, list[float]]:
    """first_token's formula: the first token with the highest log-probability picks a group (the
    options starting with it); the option with the highest whole log-likelihood in it wins.
    Returns (the pick, each option's first-token log-probability)."""
    top = max(range(len(tokens)), key=lambda j: tokens[j][0][1])
    group = [j for j in range(len(tokens)) if tokens[j][0][0] == tokens[top][0][0]]
    best = max(group, key=lambda j: sum(lp for _, lp in tokens[j]))
    return options[best], [t[0][1] for t in tokens]
