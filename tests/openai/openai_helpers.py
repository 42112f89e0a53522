"""Helpers for the `openai:` tests: a llama.cpp server process and the `advise` command."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).with_name("llama_server.py")


class LlamaServer:
    """A llama.cpp server process; `url` is its root, `base_url` its OpenAI endpoint."""

    def __init__(self, log: Path, parallel: int = 4) -> None:
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(LAUNCHER), "--parallel", str(parallel),
                                          "--ctx", str(2048 * parallel)],
                                         stdout=subprocess.PIPE, stderr=err)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server listens (about 2 s)
        if not line:
            self.proc.wait(timeout=30)
            pytest.fail(f"llama.cpp server exited with {self.proc.returncode}:\n{log.read_text()[-2000:]}")
        self.url = json.loads(line)["url"].rstrip("/")
        if not self.url.startswith("http"):
            self.url = "http://" + self.url
        self.base_url = self.url + "/v1"

    def kill(self) -> None:
        """SIGKILL this server's pid (a crash), and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to this pid only
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def api_settings(url: str, **extra: object) -> str:
    """task.yaml lines for the served SmolLM2 behind `url` under which each eval item costs exactly one
    request: the classification path forced (no dev trials of the other paths) and a ranking method
    that needs no content-free reference. For the tests that count requests (retries, resume, budget,
    disk full); `extra`: more `openai:` settings."""
    more = "".join(f", {k}: {v}" for k, v in {"classification": "first_token_logprobs", **extra}.items())
    return f"model: openai:smollm2\nopenai: {{base_url: '{url}/v1'{more}}}\nscoring: {{option_ranking: first_token}}\n"


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`advise ARGS` in a subprocess (a fresh process, as a user runs it)."""
    exe = Path(sys.executable).with_name("advise")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def stored_predictions(run: Path) -> int:
    """Predictions in the run folder's store (opened read-only: never creates it); 0 when none."""
    db_path = run / "advise.sqlite"
    if not db_path.exists():
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
