"""A real llama.cpp server (the `xllamacpp` wheel) on the embedded SmolLM2, for the `openai:` backend."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # the helpers beside this file (tests use importlib mode)
from openai_helpers import LlamaServer  # noqa: E402


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory) -> Iterator[LlamaServer]:
    """One server for the session: 4 slots, 1 thread, embeddings with mean pooling."""
    server = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_server(tmp_path) -> Iterator[LlamaServer]:
    """A server of this test's own (one to kill)."""
    server = LlamaServer(tmp_path / "server.log", parallel=2)
    try:
        yield server
    finally:
        server.stop()


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_task(tmp_path):
    """`make_task(settings, levers=..., n_eval=8, n_train=30, name=...)` -> task.yaml path: the real TREC
    sample task cut small, with `settings` (YAML text: model, models, openai, prices, ...) appended."""

    def make(settings: str, levers: str = "[prompt]", n_eval: int = 8, n_train: int = 30,
             folder: str = "task", kind: str = "trec", max_new_tokens: int = 6) -> Path:
        src = ROOT / "sample_tasks" / kind
        dst = tmp_path / folder
        (dst / "data").mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train), ("eval", n_eval)):
            lines = (src / "data" / f"{split}.jsonl").read_text().splitlines()[:n]
            (dst / "data" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        if kind == "countries":  # the eval items' own documents plus 4 others: quick to embed
            wanted = {s for line in (dst / "data" / "eval.jsonl").read_text().splitlines()
                      for s in json.loads(line).get("sources", [])}
            docs = (src / "data" / "knowledge.jsonl").read_text().splitlines()
            keep = [d for i, d in enumerate(docs) if i < 4 or json.loads(d)["id"] in wanted]
            (dst / "data" / "knowledge.jsonl").write_text("\n".join(keep) + "\n")
        spec = yaml.safe_load((src / "task.yaml").read_text())
        for key in ("levers", "model", "lever_options"):
            spec.pop(key, None)
        if kind == "trec":  # a short prompt: the server here runs on one shared CPU thread
            spec["prompt"]["system"] = "Classify the question by the type of answer it expects."
        spec["prompt"]["max_new_tokens"] = max_new_tokens
        spec["prompt"].pop("variants", None)  # one wording: these tests look at the backend, not the dev choice
        text = yaml.safe_dump(spec, sort_keys=False) + f"levers: {levers}\n" + settings
        (dst / "task.yaml").write_text(text)
        return dst / "task.yaml"

    return make


