"""Grading outputs against a rubric with a judge model, cached in the run store.

    grader = Grader(task.rubric, judge_backend, store)
    found = grader.grade([(example_id, input_text, output_text), ...])
    found.grades["owns_problem"]      # one per item: 1.0 pass, 0.0 fail, None unscored
    found.summary()                   # criterion -> rate over scored items, scored, unscored
    found.samples["owns_problem"]     # with rubric.samples k > 1: per item its k grades

With `rubric.samples: k` > 1 every output is graded k times at `rubric.temperature` (each sample its
own cache entry); the item's grade is the majority of its scored samples, a tie unscored (counted as
`ties` in the summary), and the items whose samples hold both a pass and a fail are `flips`.

The judge's answer is constrained by a JSON schema (`response_format` json_schema: the OpenAI API,
vLLM and llama.cpp honour it); an answer that still cannot be read (not JSON, a criterion missing, a
value other than "pass"/"fail", cut off at the token budget, a refusal) is *unscored*: never a pass or a
fail, left out of the criterion's rate and counted beside it.

Each grade is stored under a key of the judge's identity (model and server, never the key), the judge
prompt's hash (`rubric.prompt_hash`), the criterion and the output text's hash, so a rerun sends no
request for an output it graded before. Judge tokens and dollars (`JudgeGrades.cost`) are the judge's,
counted apart from the lever's own cost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from advisor.judge.rubric import (
    Criterion,
    Rubric,
    answer_schema,
    judge_messages,
    parse_grades,
    prompt_hash,
    stable_hash,
)
from advisor.pricing import token_cost_usd
from advisor.types import GenerationParams, Request


def text_hash(text: str) -> str:
    """The hash a grade and a human label are keyed on: a grade holds while the output is unchanged."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class JudgeGrades:
    """What one `Grader.grade` call found on n items (in the order given)."""

    judge: str  # the judge's identity (model@server)
    criteria: list[str]
    ids: list[str]
    output_hashes: list[str]
    grades: dict[str, list[float | None]] = field(default_factory=dict)  # criterion -> n grades (the majority)
    samples: dict[str, list[list[float | None]]] = field(default_factory=dict)  # criterion -> n lists of k grades
    prompt_hashes: dict[str, str] = field(default_factory=dict)  # criterion -> judge prompt hash
    requests: int = 0  # sent in this call
    cached: int = 0  # grades read back from the store
    tokens_in: int = 0  # of every grade used (cached ones too): what grading these outputs costs
    tokens_out: int = 0
    usd: float | None = 0.0  # None: the judge's price is unknown

    def summary(self) -> dict[str, dict[str, Any]]:
        """criterion -> {rate (over scored items; None with none scored), passed, scored, unscored, prompt_hash}."""
        out = {}
        for c in self.criteria:
            g = self.grades[c]
            scored = [x for x in g if x is not None]
            out[c] = {"rate": sum(scored) / len(scored) if scored else None, "passed": int(sum(scored)),
                      "scored": len(scored), "unscored": len(g) - len(scored), "prompt_hash": self.prompt_hashes[c]}
            drawn = self.samples.get(c) or []
            if drawn and max(len(s) for s in drawn) > 1:
                flipped = flips(drawn, self.ids)
                ties = [i for i, s, m in zip(self.ids, drawn, g)
                        if m is None and any(x is not None for x in s)]
                out[c] |= {"samples": max(len(s) for s in drawn), "flips": len(flipped), "flip_ids": flipped,
                           "flip_rate": len(flipped) / len(g) if g else None, "ties": len(ties), "tie_ids": ties}
        return out

    def cost(self) -> dict[str, Any]:
        """The judge's own cost, apart from the lever's: requests sent now, grades reused, tokens, dollars."""
        return {"judge": self.judge, "requests": self.requests, "cached": self.cached, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "usd": self.usd}


class Grader:
    """A rubric's judge (an OpenAIBackend, or any Backend with `answers()` and an `identity`) over a store."""

    def __init__(self, rubric: Rubric, backend: Any, store: Any) -> None:
        self.rubric, self.backend, self.store = rubric, backend, store
        self.identity = backend.identity

    def _groups(self) -> list[list[Criterion]]:
        return criteria_groups(self.rubric)

    def key(self, criterion: Criterion, output_hash: str, sample: int = 0) -> str:
        """The store key of one grade; with rubric.samples > 1 or a temperature above 0, one per sample
        index and temperature (so k = 1 at temperature 0 keeps the keys grades had before samples)."""
        base = {"judge": self.identity, "prompt": prompt_hash(self.rubric, criterion), "criterion": criterion.name,
                "output": output_hash}
        if self.rubric.samples > 1 or self.rubric.temperature:
            base |= {"temperature": self.rubric.temperature, "sample": sample}
        return stable_hash(base)

    def grade(self, items: list[tuple[str, str, str]]) -> JudgeGrades:
        """Grade `items` ((example_id, input, output) each); cached grades are read, the rest sent."""
        crits = self.rubric.criteria
        hashes = [text_hash(out) for _, _, out in items]
        found = JudgeGrades(self.identity, [c.name for c in crits], [i for i, _, _ in items], hashes)
        found.prompt_hashes = {c.name: prompt_hash(self.rubric, c) for c in crits}
        k = self.rubric.samples
        keys = {(c.name, h, s): self.key(c, h, s) for c in crits for h in set(hashes) for s in range(k)}
        cached = self.store.get_grades(list(keys.values()))
        # One request per (criteria group, distinct output, sample) whose grades are not all cached.
        todo: list[tuple[list[Criterion], int, int]] = []
        seen: set[tuple[int, str]] = set()
        for gi, group in enumerate(self._groups()):
            for n in range(len(items)):
                if (gi, hashes[n]) in seen:
                    continue
                seen.add((gi, hashes[n]))
                todo += [(group, n, s) for s in range(k)
                         if not all(keys[(c.name, hashes[n], s)] in cached for c in group)]
        requests = [Request(f"judge-{n}-{s}", judge_messages(self.rubric, group, items[n][1], items[n][2]),
                            max_new_tokens=self.rubric.max_new_tokens, json_schema=answer_schema(group))
                    for group, n, s in todo]
        rows = []
        if requests:
            params = GenerationParams(max_new_tokens=self.rubric.max_new_tokens, temperature=self.rubric.temperature,
                                      option_ranking=None)
            price = getattr(self.backend, "price", None)
            per_s = self.backend.price_per_second_usd() if hasattr(self.backend, "price_per_second_usd") else 0.0
            for i, gen in self.backend.answers(requests, params):
                found.requests += 1
                group, n, smp = todo[i]
                parsed = parse_grades(gen.text, group)
                usd = (gen.seconds * per_s if per_s else
                       token_cost_usd(price, gen.tokens_in, gen.tokens_out, gen.tokens_in_cached))
                # A joint answer's tokens are shared by its criteria: each row carries its share.
                share = len(group)
                for c in group:
                    row = (keys[(c.name, hashes[n], smp)], self.identity, found.prompt_hashes[c.name], c.name,
                           hashes[n], parsed[c.name], gen.text, gen.tokens_in / share, gen.tokens_out / share,
                           None if usd is None else usd / share)
                    rows.append(row)
                    cached[row[0]] = {"grade": parsed[c.name], "answer": gen.text, "tokens_in": row[7],
                                      "tokens_out": row[8], "usd": row[9], "new": True}
                if len(rows) >= 64:
                    self.store.put_grades(rows)
                    rows = []
            self.store.put_grades(rows)
        counted: set[str] = set()
        for c in crits:
            found.grades[c.name] = []
            found.samples[c.name] = []
            for h in hashes:
                drawn = [cached[keys[(c.name, h, s)]]["grade"] for s in range(k)]
                found.samples[c.name].append(drawn)
                found.grades[c.name].append(majority(drawn))
            for key in (keys[(c.name, h, s)] for h in hashes for s in range(k)):
                got = cached[key]
                if key in counted:
                    continue
                counted.add(key)
                found.cached += 0 if got.get("new") else 1
                found.tokens_in += int(round(got["tokens_in"]))
                found.tokens_out += int(round(got["tokens_out"]))
                if got["usd"] is None:
                    found.usd = None
                elif found.usd is not None:
                    found.usd += got["usd"]
        return found


def criteria_groups(rubric: Rubric) -> list[list[Criterion]]:
    """The criteria one judge request grades together: each alone in `per_criterion` mode, all of them in
    `joint`. An output is sent once per group and per sample (`Grader.grade`)."""
    if rubric.mode == "joint":
        return [list(rubric.criteria)]
    return [[c] for c in rubric.criteria]


def majority(grades: list[float | None]) -> float | None:
    """The grade most of an item's samples give (1.0 / 0.0), over its scored samples; None (unscored) when
    none is scored or passes and fails tie."""
    scored = [g for g in grades if g is not None]
    passes = sum(1 for g in scored if g == 1.0)
    if not scored or 2 * passes == len(scored):
        return None
    return 1.0 if 2 * passes > len(scored) else 0.0


def flips(samples: list[list[float | None]], ids: list[str]) -> list[str]:
    """The ids of items whose scored samples hold both a pass and a fail."""
    return [i for i, s in zip(ids, samples) if {g for g in s if g is not None} == {0.0, 1.0}]


def self_judge_warning(rubric: Rubric, model_spec: str) -> str | None:
    """A warning when the judge is the graded model or of its family (judges favour their own outputs)."""
    from advisor.judge.rubric import same_family

    if same_family(rubric.judge_spec, model_spec):
        return (f"the judge {rubric.judge_spec} grades outputs of {model_spec}, the same model or family; judges "
                "tend to favour their own kind's outputs: use another family's model as the judge where you can")
    return None


__all__ = ["Grader", "JudgeGrades", "criteria_groups", "flips", "majority", "self_judge_warning", "text_hash"]
