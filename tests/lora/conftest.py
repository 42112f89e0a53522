"""Fixtures for the LoRA tests: the real SmolLM2 (loaded once) and a tiny TREC-style task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

QUESTIONS = [
    ("What is the capital of France ?", "LOC"),
    ("Who wrote Hamlet ?", "HUM"),
    ("How many legs does a spider have ?", "NUM"),
    ("What does NASA stand for ?", "ABBR"),
    ("Why is the sky blue ?", "DESC"),
    ("What is a group of crows called ?", "ENTY"),
    ("Where is Mount Everest ?", "LOC"),
    ("Who painted the Mona Lisa ?", "HUM"),
    ("How far away is the moon ?", "NUM"),
    ("What does CPU mean ?", "ABBR"),
    ("How do magnets work ?", "DESC"),
    ("What animal barks ?", "ENTY"),
    ("Where is Kyoto ?", "LOC"),
    ("Who invented the telephone ?", "HUM"),
    ("When did World War II end ?", "NUM"),
    ("What is the abbreviation for kilogram ?", "ABBR"),
]
EVAL = [
    ("Where is the Eiffel Tower ?", "LOC"),
    ("Who discovered penicillin ?", "HUM"),
    ("How many days are in a leap year ?", "NUM"),
    ("What does DNA stand for ?", "ABBR"),
]
LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
SYSTEM = "Classify the question by the type of answer it expects."


def chat(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Question: {question}\nType:"},
    ]


@pytest.fixture(scope="session")
def loaded(loaded_model):
    """The real base model (the suite's session fixture); tests must not change it: training takes a copy."""
    return loaded_model


@pytest.fixture(scope="session")
def pairs() -> list[tuple[list[dict[str, str]], str]]:
    return [(chat(q), a) for q, a in QUESTIONS]


def _write_task(folder: Path, *, leaked: int = 0, lever_options: dict | None = None, levers=("lora",),
                knowledge: list[dict] | None = None, models: dict[str, str] | None = None):
    """A tiny classification task on disk; `leaked` eval questions are copied into train (re-spaced, re-cased);
    `knowledge` documents ({id, text}) go to knowledge.jsonl; `models` (alias -> spec): several models
    instead of the default `model:`."""
    from advisor.spec import Task

    folder.mkdir(parents=True, exist_ok=True)
    train = [{"id": f"t{i}", "input": q, "output": a} for i, (q, a) in enumerate(QUESTIONS)]
    for i, (q, a) in enumerate(EVAL[:leaked]):
        train.append({"id": f"leak{i}", "input": "  " + q.upper().replace(" ", "   "), "output": a})
    evals = [{"id": f"e{i}", "input": q, "output": a} for i, (q, a) in enumerate(EVAL)]
    for name, rows in (("train.jsonl", train), ("eval.jsonl", evals)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {"train": "train.jsonl", "eval": "eval.jsonl"}
    if knowledge is not None:
        (folder / "knowledge.jsonl").write_text("".join(json.dumps(d) + "\n" for d in knowledge))
        data["knowledge"] = "knowledge.jsonl"
    return Task.model_validate(
        {
            **({"models": models} if models else {}),
            "name": "tiny-trec",
            "kind": "classification",
            "labels": LABELS,
            "data": data,
            "prompt": {"system": SYSTEM, "template": "Question: {{ input }}\nType:"},
            "target": {"metric": "accuracy", "threshold": 0.8},
            "levers": list(levers),
            "lever_options": lever_options or {},
            "costs": {
                "cpu_hour_usd": 0.36,
                "engineer_hour_usd": 100,
                "curation_hours": 0.5,
                "retrain_per_month": 2,
            },
            "base_dir": folder,
        }
    )


def _make_context(task, tmp: Path, loaded, progress=None):
    from advisor.backends.hf import HFBackend
    from advisor.data import load_dataset
    from advisor.types import LeverContext

    backend = HFBackend(loaded, usd_per_hour=task.costs.cpu_hour_usd)
    return LeverContext(
        task=task,
        data=load_dataset(task),
        workdir=tmp / "work",
        cache_dir=tmp / "cache",
        base_backend=lambda: backend,
        progress=progress,
    )


@pytest.fixture
def make_task():
    return _write_task


@pytest.fixture
def make_context(loaded):
    return lambda task, tmp, progress=None: _make_context(task, tmp, loaded, progress)
