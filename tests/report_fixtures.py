"""Stored runs shaped like each sample task's, for the report tests and bench/bench_report.py.

Each builder writes a run folder as `advise run` leaves it: results.json and an advise.sqlite
made through the real RunStore (its migrations, its per-item tables). Numbers follow the sample
tasks' READMEs; per-item answers are generated from a seeded RNG so that each lever's failures
match its accuracy. `trec` carries every results.json key the parallel branches agreed on
(/work/notes/CONTRACT.md: states, baseline, comparisons, break-even, audit, prompt search,
classification path); `countries` and `addresses` carry only today's keys, so both paths render.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from advisor.store import RunStore
from advisor.types import Example, Prediction

CREATED = "2026-11-29T10:00:00Z"


def _iv(value: float, half: float = 0.05) -> dict[str, float]:
    return {"value": value, "ci_low": max(0.0, round(value - half, 3)), "ci_high": min(1.0, round(value + half, 3))}


def _cost(per_1k: float, setup: float, upkeep: float, volume: int, p50: float, p95: float) -> dict[str, float]:
    monthly = per_1k / 1000 * volume + upkeep
    return {"setup_usd": setup, "per_1k_queries_usd": per_1k, "latency_ms_p50": p50, "latency_ms_p95": p95,
            "upkeep_usd_per_month": upkeep, "monthly_usd": monthly, "first_year_usd": setup + 12 * monthly,
            "tokens_in_mean": 60.0, "tokens_out_mean": 2.0, "compute_s_per_query": per_1k / 100,
            "setup_seconds": setup * 3}


def _lever(name: str, rung: float, metrics: dict[str, Any], cost: dict[str, float], n: int, meets: bool,
           details: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "rung": rung, "options": {"k": 6, "seed": 0} if "few" in name else {},
            "artifact": {"identity": f"{name}-0123456789abcdef", "model": "hf:smollm2-135m-instruct@b179c9523d0e6a0f"},
            "metrics": metrics, "confidence": 0.95, "n_eval": n, "cost": cost, "meets_target": meets,
            "computed_predictions": n, "details": details or {}, **extra}


def _provenance(task: str, n_train: int, n_eval: int, argv: list[str], **data: Any) -> dict[str, Any]:
    return {"model": "hf:smollm2-135m-instruct", "task_file": f"sample_tasks/{task}/task.yaml",
            "task_sha256": "4f2a9c0d1e2b3a44", "prompt_sha256": "9e8d7c6b5a493827",
            "data": {"train": "a1b2c3d4e5f60718", "eval": "0f1e2d3c4b5a6978", "n_train": n_train, "n_eval": n_eval,
                     "leakage_removed": [], **data},
            "versions": {"python": "3.11.2", "advise": "0.1.0", "torch": "2.13.0+cpu", "matplotlib": "3.11.2"},
            "git": {"commit": "7c3004c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6", "dirty": False},
            "platform": "Linux-6.1-x86_64-with-glibc2.36", "argv": argv, "created": CREATED}


def _confusion(labels: list[str], golds: list[str], preds: list[str | None]) -> dict[str, Any]:
    cols = [*labels, None]
    return {"labels": labels, "columns": [*labels, "(none)"],
            "matrix": [[sum(1 for g, p in zip(golds, preds) if g == gl and p == pl) for pl in cols] for gl in labels]}


def write_run(folder: Path, results: dict[str, Any], items: dict[str, list[tuple[Example, Any, str, float]]],
              metric: str) -> Path:
    """Write results.json and an advise.sqlite holding one finished run with these per-item answers.

    `items`: lever row name -> [(example, parsed output, raw text, per-item score on `metric`)].
    """
    folder.mkdir(parents=True, exist_ok=True)
    store = RunStore(folder / "advise.sqlite")
    try:
        run_id = store.start_run(results["task"])
        for lever, rows in items.items():
            examples = [ex for ex, _, _, _ in rows]
            preds = [Prediction(ex.id, out, raw, 60, 2, 0.01) for ex, out, raw, _ in rows]
            store.put_run_items(run_id, lever, examples, preds)
            store.put_item_scores(run_id, lever, [ex.id for ex in examples], {metric: [s for *_, s in rows]})
        store.finish_run(run_id, "done", results)
    finally:
        store.close()
    (folder / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder


def _example(i: int, text: str, gold: Any, file: str = "data/eval.jsonl") -> Example:
    return Example(f"e{i:04d}", text, gold, {"input": text, "output": gold}, f"{file}:{i + 1}", f"h{i}")


TREC_LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
_TREC_Q = ["What does {w} stand for ?", "How do you {w} a kite ?", "What is the best {w} to buy ?",
           "Who invented the {w} ?", "Where is the {w} located ?", "How many {w} are there in a year ?"]
_WORDS = ["NASA", "origami", "bicycle", "telephone", "Eiffel Tower", "moons", "laser", "guitar", "volcano", "sonnet"]


def trec(folder: Path, n: int = 300) -> Path:
    """TREC question types: classification, five levers plus prompt-search, every contract key present."""
    rng = random.Random(13)
    golds = [TREC_LABELS[rng.randrange(6)] for _ in range(n)]
    examples = [_example(i, _TREC_Q[TREC_LABELS.index(g)].format(w=_WORDS[i % 10]), g) for i, g in enumerate(golds)]
    volume = 100_000
    spec = [  # name, rung, accuracy, per_1k, setup, upkeep, p50, p95, state
        ("prompt", 0, 0.290, 0.0019, 0.0, 0.0, 413, 468, "fails"),
        ("prompt-few-shot", 1, 0.307, 0.0174, 0.0, 0.0, 2509, 8625, "fails"),
        ("prompt-search", 1.5, 0.512, 0.0021, 3.4, 0.0, 420, 470, "fails"),
        ("rag", 2, 0.487, 0.0173, 0.0004, 0.0, 460, 557, "fails"),
        ("lora", 3, 0.830, 0.0019, 480.01, 0.011, 387, 395, "undecided"),
        ("lora-rag", 4, 0.853, 0.0180, 480.4, 0.02, 470, 560, "meets"),
    ]
    levers, items = [], {}
    for name, rung, acc, per_1k, setup, upkeep, p50, p95, st in spec:
        preds: list[str | None] = [g if rng.random() < acc else rng.choice([x for x in TREC_LABELS if x != g])
                                   for g in golds]
        correct = [1.0 if p == g else 0.0 for p, g in zip(preds, golds)]
        a = sum(correct) / n
        details: dict[str, Any] = {"per_label": {lab: {"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                                       "support": golds.count(lab)} for lab in TREC_LABELS},
                                   "confusion": _confusion(TREC_LABELS, golds, preds), "truncated": 0}
        if name == "prompt-search":
            details["prompt_variants"] = [{"name": "as-written", "dev_score": 0.30, "chosen": False},
                                          {"name": "labels-explained", "dev_score": 0.52, "chosen": True}]
            details["search"] = {"candidates": 12, "dev_items": 60, "chosen": {"instruction": "labels-explained",
                                 "shots": 4}, "dev_score": 0.52, "eval_score": a, "dev_eval_gap": 0.52 - a,
                                 "setup_seconds": 84.0}
        if name == "rag":
            details["truncated"] = 3
        lo, hi = max(0.0, a - 0.05), min(1.0, a + 0.05)
        levers.append(_lever(name, rung, {"accuracy": _iv(a), "macro_f1": _iv(a - 0.1, 0.04)},
                             _cost(per_1k, setup, upkeep, volume, p50, p95), n, st == "meets", details,
                             state=st, family="prompt" if rung < 2 else "retrieval" if rung < 3 else "fine-tuning",
                             lower_bound=lo, upper_bound=hi, no_better_than_baseline=name == "prompt",
                             items_needed=420 if st == "undecided" else None,
                             classification_path="option_loglik", unmappable=0,
                             lever=name, model="smollm2"))
        items[name] = [(ex, p, p or "", c) for ex, p, c in zip(examples, preds, correct)]
    # A hosted model whose price the run did not know (issue 11: null, never 0), named lever@model.
    hosted = json.loads(json.dumps(levers[0]))
    hosted.update(name="prompt@hosted", lever="prompt", model="openai:gpt-4o-mini", state="fails",
                  classification_path="json_schema_enum", unmappable=2)
    hosted["cost"].update(per_1k_queries_usd=None, monthly_usd=None, first_year_usd=None)
    levers.insert(1, hosted)
    items["prompt@hosted"] = items["prompt"]
    results = {
        "task": "trec-question-type", "kind": "classification",
        "target": {"metric": "accuracy", "threshold": 0.8, "confidence": 0.95,
                   "need": "Routing questions to the right desk: below 80% the desks re-route by hand."},
        "levers": levers,
        "recommendation": {
            "lever": "lora-rag", "reason": "lora-rag meets the target with its lower bound above 0.80.",
            "closest": None, "next_step": None, "ranking": [lv["name"] for lv in levers],
            "notes": ["rag: the gold source is retrieved for only 40% of questions: a retrieval miss."],
            "rule": "lower_bound", "margin": 0.02,
            "states": {lv["name"]: lv["state"] for lv in levers},
            "comparisons": [{"lever": "lora", "against": "lora-rag", "metric": "accuracy",
                             "difference": {"value": -0.023, "ci_low": -0.061, "ci_high": 0.015},
                             "mcnemar_p": 0.21, "significantly_better": False, "non_inferior": False,
                             "message": "lora is not shown non-inferior to lora-rag within 0.02."}],
            "break_even": [{"cheaper": "lora-rag", "dearer": "lora", "queries_per_month": None,
                            "message": "lora is cheaper at every volume"},
                           {"cheaper": "prompt", "dearer": "lora", "queries_per_month": 2_500_000.0,
                            "message": "above 2.5M queries a month lora costs less than prompt"}],
            "reasons": ["lora is undecided: its lower bound 0.787 is below 0.80; about 420 more items would settle it.",
                        "prompt is no better than always answering the majority label."]},
        "eval_limit": None, "queries_per_month": volume,
        "baseline": {"name": "majority-label", "metrics": {"accuracy": _iv(0.23, 0.04)}, "answer": "ENTY"},
        "scoring": {"option_ranking": "option_loglik"},
        "audit": {"findings": [{"check": "near_duplicate", "severity": "warning", "count": 2,
                                "message": "2 eval questions have a near-copy in train",
                                "examples": [{"a": "data/eval.jsonl:4", "b": "data/train.jsonl:118",
                                              "text": "Who invented the telephone ?"}]},
                               {"check": "class_balance", "severity": "info", "count": 1,
                                "message": "ABBR has 6 eval items: too few to say anything about it",
                                "examples": []}],
                  "counts": {"warning": 1, "info": 1}, "strict": False},
        "provenance": _provenance("trec", 4700, n, ["advise", "run", "sample_tasks/trec/task.yaml"],
                                  leakage_removed=["t0117", "t2203"]),
    }
    results["provenance"]["data"]["leakage_removed"] = ["t0117", "t2203"]
    return write_run(folder, results, items, "accuracy")


def countries(folder: Path, n: int = 150) -> Path:
    """ISO country codes from a knowledge base: qa with retrieval recall and MRR; today's keys only."""
    rng = random.Random(7)
    names = ["Norway", "Peru", "Kenya", "Nepal", "Chile", "Oman", "Fiji", "Laos", "Mali", "Chad"]
    examples = [_example(i, f"What is the ISO alpha-3 code of {names[i % 10]} ({i}) ?", names[i % 10][:3].upper())
                for i in range(n)]
    volume = 20_000
    spec = [("prompt", 0, 0.0, 0.0021, 0.0, 0.0), ("prompt-few-shot", 1, 0.02, 0.018, 0.0, 0.0),
            ("rag", 2, 0.0, 0.019, 0.02, 0.0), ("lora", 3, 0.12, 0.0021, 480.0, 0.01),
            ("lora-rag", 4, 0.973, 0.02, 480.5, 0.02)]
    levers, items = [], {}
    for name, rung, acc, per_1k, setup, upkeep in spec:
        outs = [ex.output if rng.random() < acc else f"The code is {ex.output}." for ex in examples]
        exact = [1.0 if o == ex.output else 0.0 for o, ex in zip(outs, examples)]
        a = sum(exact) / n
        metrics = {"exact_match": _iv(a), "token_f1": _iv(min(1.0, a + 0.2)), "contains": _iv(0.31 if name == "rag"
                                                                                            else min(1.0, a + 0.3))}
        if "rag" in name:
            metrics["retrieval_recall@4"] = _iv(1.0, 0.0)
            metrics["retrieval_mrr"] = _iv(0.93, 0.02)
        levers.append(_lever(name, rung, metrics, _cost(per_1k, setup, upkeep, volume, 400, 480), n, a >= 0.9))
        items[name] = [(ex, o, o, e) for ex, o, e in zip(examples, outs, exact)]
    results = {
        "task": "iso-country-codes", "kind": "qa",
        "target": {"metric": "exact_match", "threshold": 0.9, "confidence": 0.95,
                   "need": "A support bot quotes the code verbatim; a wrong code ships a parcel to the wrong country."},
        "levers": levers,
        "recommendation": {"lever": "lora-rag", "reason": "lora-rag reaches exact_match 0.973.", "closest": None,
                           "next_step": None, "ranking": [lv["name"] for lv in levers],
                           "notes": ["rag: the right answer appears in 31% of outputs but only 0% match exactly: "
                                     "a format miss"]},
        "eval_limit": None, "queries_per_month": volume,
        "provenance": _provenance("countries", 400, n, ["advise", "run", "sample_tasks/countries/task.yaml"],
                                  knowledge="5e6f7a8b9c0d1e2f"),
    }
    return write_run(folder, results, items, "exact_match")


def addresses(folder: Path, n: int = 200) -> Path:
    """US address lines to JSON fields: extraction with per-field F1 and a learning curve; today's keys only."""
    rng = random.Random(5)
    streets = ["Main St", "Oak Ave", "Pine Rd", "Elm Blvd", "Lake Dr"]
    examples = [_example(i, f"{100 + i} {streets[i % 5]} Springfield IL 6270{i % 10}",
                         {"AddressNumber": str(100 + i), "StreetName": streets[i % 5].split()[0],
                          "PlaceName": "Springfield", "StateName": "IL", "ZipCode": f"6270{i % 10}"})
                for i in range(n)]
    volume = 50_000
    spec = [("prompt", 0, 0.0, 0.004, 0.0, 0.0), ("prompt-few-shot", 1, 0.04, 0.03, 0.0, 0.0),
            ("lora", 3, 0.54, 0.004, 490.0, 0.01), ("lora-rag", 4, 0.595, 0.031, 491.0, 0.02)]
    levers, items = [], {}
    for name, rung, acc, per_1k, setup, upkeep in spec:
        outs = [ex.output if rng.random() < acc else {**ex.output, "ZipCode": None} for ex in examples]
        exact = [1.0 if o == ex.output else 0.0 for o, ex in zip(outs, examples)]
        a = sum(exact) / n
        details = {"per_field": {f: {"precision": 0.9, "recall": 0.8, "f1": 0.85} for f in examples[0].output}}
        levers.append(_lever(name, rung, {"exact_match": _iv(a), "json_valid": _iv(0.98, 0.02),
                                          "field_f1": _iv(min(1.0, a + 0.3))},
                             _cost(per_1k, setup, upkeep, volume, 900, 1100), n, False, details))
        items[name] = [(ex, o, json.dumps(o), e) for ex, o, e in zip(examples, outs, exact)]
    results = {
        "task": "us-address-fields", "kind": "extraction",
        "target": {"metric": "exact_match", "threshold": 0.9, "confidence": 0.95, "need": None},
        "levers": levers,
        "recommendation": {"lever": None, "reason": "No lever meets the target exact_match ≥ 0.900. The closest is "
                           "lora-rag at 0.595.", "closest": "lora-rag", "next_step": "more or cleaner training data",
                           "ranking": [lv["name"] for lv in levers], "notes": []},
        "eval_limit": None, "queries_per_month": volume,
        "learning_curves": {"lora": {"metric": "exact_match", "threshold": 0.9, "points": [
            {"fraction": 0.25, "n_train": 250, "metric": 0.35, "adapter": "lora-aaaa", "train_seconds": 231.4},
            {"fraction": 0.5, "n_train": 500, "metric": 0.47, "adapter": "lora-bbbb", "train_seconds": 402.0},
            {"fraction": 1.0, "n_train": 1000, "metric": 0.54, "adapter": "lora-cccc", "train_seconds": 780.9}],
            "model": "power", "params": {}, "flat": False, "n_needed": None,
            "message": "the fitted curve levels off at 0.576, below the target 0.9"}},
        "provenance": _provenance("addresses", 1000, n, ["advise", "run", "sample_tasks/addresses/task.yaml",
                                                          "--learning-curve"]),
    }
    return write_run(folder, results, items, "exact_match")


SCRIPT = "<script>document.title='PWNED'</script>"
IMG = "<img src=x onerror=\"document.title='PWNED-IMG'\">"
RTL = "ما هو رمز البلد؟ שלום"
EMOJI = "🚀 café 👩🏽‍💻"


def hostile(folder: Path) -> Path:
    """A planted hostile run: markup, event handlers, unbalanced tags, RTL text and emoji in every
    field that comes from data or a model (task, need, lever names, inputs, outputs, audit text),
    and a secret in the command line."""
    path = trec(folder, n=40)
    results = json.loads((path / "results.json").read_text())
    bad = f"{SCRIPT}|</table>|{IMG}"
    results["task"] = f"evil {SCRIPT}"
    results["target"]["need"] = f"need {IMG} </table></section> **bold** | pipe {RTL} {EMOJI}"
    results["recommendation"]["reason"] = f"because {SCRIPT} $x$ _under_ `tick` [link](http://evil.test)"
    renamed = {}
    for i, lv in enumerate(results["levers"]):
        new = f"{lv['name']}{SCRIPT if i == 0 else IMG if i == 1 else ' ' + RTL if i == 2 else ' ' + EMOJI}"
        renamed[lv["name"]] = new
        lv["name"] = new
    results["recommendation"]["lever"] = renamed["lora-rag"]
    results["recommendation"]["ranking"] = list(renamed.values())
    results["recommendation"]["states"] = {renamed[k]: v for k, v in results["recommendation"]["states"].items()}
    results["audit"]["findings"][0]["examples"][0]["text"] = bad
    results["provenance"]["argv"] = ["advise", "run", "t.yaml", "--set", "model_options.api_key=sk-SECRET123456789"]
    # Same per-item answers under the renamed levers, with hostile inputs and outputs.
    store = RunStore(path / "advise.sqlite")
    try:
        run_id = store.runs()[-1]["id"]
        with store.db:
            for old, new in renamed.items():
                store.db.execute("UPDATE run_items SET lever=? WHERE lever=?", (new, old))
                store.db.execute("UPDATE item_scores SET lever=? WHERE lever=?", (new, old))
            store.db.execute("UPDATE run_items SET input = input || ?, raw = ? || raw", (f" {bad} {RTL}",
                                                                                          f"{SCRIPT}{EMOJI} "))
            store.db.execute("UPDATE runs SET results=?, task=? WHERE id=?",
                             (json.dumps(results), results["task"], run_id))
    finally:
        store.close()
    (path / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


BUILDERS = {"trec": trec, "countries": countries, "addresses": addresses, "hostile": hostile}
