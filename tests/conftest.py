"""Shared fixtures. The real model loads once per session; no test touches the real home cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_tasks"

# One cache for the whole session (set before any advisor import reads it): the embedded
# model is converted once into it, for real, and the user's own ~/.cache is never touched.
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="advise-test-cache-"))
os.environ.setdefault("ADVISE_CACHE", str(_SESSION_CACHE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every test's expected answers hold on every CPU: the local model computes in fp32 unless a test says
# otherwise (tests/test_compute.py measures `auto`, which picks bf16 only on some CPUs).
os.environ.setdefault("ADVISE_PRECISION", "fp32")


SERVER_START_TIMEOUT_S = 60.0


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["ADVISE_CACHE"])


@pytest.fixture(scope="session")
def loaded_model(cache_dir):
    """The real embedded SmolLM2, loaded once for every test that needs it."""
    from advisor.backends.hf import load_base

    return load_base("smollm2-135m-instruct", cache_dir)


@pytest.fixture(scope="session")
def hf_backend(loaded_model):
    from advisor.backends.hf import HFBackend

    return HFBackend(loaded_model, usd_per_hour=0.10)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def write_jsonl():
    """`write_jsonl(path, rows)` writes one JSON object per line and returns the path."""
    return _write_jsonl


@pytest.fixture
def trec_small(tmp_path) -> Path:
    """The real TREC sample task, cut to 60 train and 24 eval items, in a temp folder."""
    src = SAMPLES / "trec"
    dst = tmp_path / "trec"
    (dst / "data").mkdir(parents=True)
    train = (src / "data" / "train.jsonl").read_text().splitlines()[:60]
    eval_ = (src / "data" / "eval.jsonl").read_text().splitlines()[:24]
    (dst / "data" / "train.jsonl").write_text("\n".join(train) + "\n")
    (dst / "data" / "eval.jsonl").write_text("\n".join(eval_) + "\n")
    text = (src / "task.yaml").read_text()
    # Without the prompt variants: these tests look at one wording (tests/test_prompt_search.py at several).
    text = re.sub(r"(?m)^  variants:\n(?:    .*\n)*", "", text)
    text = text.replace("levers: [prompt, prompt-few-shot, rag, lora]", "levers: [prompt, prompt-few-shot]")
    text = text.replace("prompt-few-shot: {k: 6, selection: random, seed: 0}",
                        "prompt-few-shot: {k: 2, selection: fixed}")
    (dst / "task.yaml").write_text(text)
    return dst / "task.yaml"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[str]:
    """A real Chroma server on a free local port; yields its URL and stops it afterwards."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        pytest.fail(f"the `chroma` executable is not next to {sys.executable}; reinstall chromadb")
    data = tmp_path_factory.mktemp("chroma-server")
    log_path = data.parent / "chroma-server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _heartbeat(url):
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer within {SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()  # SIGTERM to this pid only; the server shuts down cleanly on it
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
