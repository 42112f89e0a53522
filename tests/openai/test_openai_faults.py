"""Faults and bad input for the `openai:` backend: a fault-injecting proxy in front of the real server,
a killed server, budgets, a planted key. Every run goes through the `advise` command, as a user's would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from openai_helpers import LlamaServer, api_settings, run_cli, stored_predictions
from openai_proxy import FaultProxy

pytestmark = pytest.mark.slow


def _settings(url: str, **extra: object) -> str:
    return api_settings(url, **{"max_retries": 3, **extra})


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]




def test_retries_through_429_500_and_dropped_connections(llama_server, make_task, tmp_path):
    with FaultProxy(llama_server.url, faults=["429:1", "500", "drop", "ok", "500"]) as proxy:
        task = make_task(_settings(proxy.url, max_concurrency=2), n_eval=6)
        proc = run_cli(["run", str(task), "--out", str(tmp_path / "run"), "--latency-probe", "0", "--quiet"])
        assert proc.returncode == 0, proc.stderr
        assert {"429:1", "500", "drop"} <= set(proxy.seen)  # every fault was met, and retried by the client
        assert len(proxy.answered) == 6 and len(set(proxy.answered)) == 6  # each item answered exactly once
    row = json.loads((tmp_path / "run" / "results.json").read_text())["levers"][0]
    assert row["n_eval"] == 6


def test_long_retry_after_stops_cleanly_and_the_next_run_resumes(llama_server, make_task, tmp_path):
    run = tmp_path / "run"
    with FaultProxy(llama_server.url, faults=["ok", "ok", "429:900"]) as proxy:
        task = make_task(_settings(proxy.url, max_concurrency=1), n_eval=6)
        stopped = run_cli(["run", str(task), "--out", str(run), "--latency-probe", "0", "--quiet"])
        assert stopped.returncode == 1
        line = _one_line_error(stopped)
        assert "Retry-After" in line and "900" in line and "saved" in line
        assert stored_predictions(run) == 2  # the two answers before the stop are kept
        done = run_cli(["run", str(task), "--out", str(run), "--latency-probe", "0", "--quiet"])
        assert done.returncode == 0, done.stderr
        # The request log: no prediction was asked for twice across the stop and the resume.
        assert len(proxy.answered) == 6 and not [h for h, n in Counter(proxy.answered).items() if n > 1]


def test_budget_stops_cleanly_then_resumes(llama_server, make_task, tmp_path):
    run = tmp_path / "run"
    with FaultProxy(llama_server.url) as proxy:
        task = make_task(_settings(proxy.url, max_concurrency=2) + "budget: {max_requests: 3}\n", n_eval=6)
        stopped = run_cli(["run", str(task), "--out", str(run), "--latency-probe", "0", "--quiet"])
        assert stopped.returncode == 1
        assert "budget.max_requests 3" in _one_line_error(stopped)
        assert stored_predictions(run) == 3 and len(proxy.answered) == 3
        done = run_cli(["run", str(task), "--out", str(run), "--latency-probe", "0", "--quiet",
                        "--set", "budget.max_requests=10"])
        assert done.returncode == 0, done.stderr
        assert sorted(Counter(proxy.answered).values()) == [1] * 6


def test_a_budget_stop_while_the_path_is_chosen_on_dev_keeps_every_paid_answer(llama_server, make_task, tmp_path):
    """Under `classification: auto` the dev split is asked first, calibrated by a content-free request per
    prompt form. That reference is bought before the items that need it: a budget that stops at it has paid
    for no answer it then throws away (asked after an item, the stop lost the item's paid answer)."""
    run = tmp_path / "run"
    with FaultProxy(llama_server.url) as proxy:
        task = make_task(f"model: openai:smollm2\nopenai: {{base_url: '{proxy.url}/v1', max_concurrency: 4}}\n"
                         "budget: {max_requests: 3}\n", n_eval=6)
        stopped = run_cli(["run", str(task), "--out", str(run), "--latency-probe", "0", "--quiet"])
        assert stopped.returncode == 1
        assert "budget.max_requests 3" in _one_line_error(stopped)
        items = [b for b in proxy.bodies if b"Question: N/A" not in b]  # the content-free reference's question
        assert len(proxy.bodies) == 3 and len(items) == 2
        assert stored_predictions(run) == 2  # every item answer paid for is kept


def test_a_killed_server_stops_the_run_cleanly_and_the_next_run_resumes(make_task, tmp_path):
    run = tmp_path / "run"
    server = LlamaServer(tmp_path / "server.log", parallel=2)
    try:
        with FaultProxy(server.url, delay_s=0.2) as proxy:
            task = make_task(_settings(proxy.url, max_concurrency=2, max_retries=1), n_eval=16)
            exe = Path(sys.executable).with_name("advise")
            proc = subprocess.Popen([str(exe), "run", str(task), "--out", str(run), "--latency-probe", "0",
                                     "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 300
            while stored_predictions(run) < 3 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            server.kill()  # mid-run: answers are stored, others are in flight or waiting
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 1, err
            line = _one_line_error(subprocess.CompletedProcess([], 1, "", err))
            assert "stopped answering" in line and proxy.url in line and "resume" in line
            kept = stored_predictions(run)
            assert 3 <= kept < 16
            server = LlamaServer(tmp_path / "server2.log", parallel=2)  # back up, on a new port behind the proxy
            proxy.upstream = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
            done = run_cli(["run", str(task), "--out", str(run), "--latency-probe", "0", "--quiet"])
            assert done.returncode == 0, done.stderr
            assert stored_predictions(run) == 16
            assert len(proxy.answered) == 16 and len(set(proxy.answered)) == 16  # nothing requested twice
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_input_is_one_line_no_traceback(llama_server, make_task, tmp_path):
    cases = []
    task = make_task("model: ollama:llama3\n", folder="scheme")
    cases.append((run_cli(["run", str(task), "--out", str(tmp_path / "a"), "--quiet"]), 2, "must start with"))
    task = make_task(_settings(llama_server.url, api_key_env="ADVISE_TEST_UNSET_KEY"), folder="key")
    cases.append((run_cli(["run", str(task), "--out", str(tmp_path / "b"), "--quiet"]), 2, "ADVISE_TEST_UNSET_KEY"))
    task = make_task(_settings(f"http://127.0.0.1:{_free_port()}"), folder="down")
    cases.append((run_cli(["run", str(task), "--out", str(tmp_path / "c"), "--quiet"]), 2, "cannot reach"))
    with FaultProxy(llama_server.url, body=b"<html><body>It works!</body></html>") as html:
        task = make_task(_settings(html.url), folder="html")
        cases.append((run_cli(["run", str(task), "--out", str(tmp_path / "d"), "--quiet"]), 2, "OpenAI API"))
    task = make_task(_settings(llama_server.url), levers="[prompt, lora]", folder="lora")
    cases.append((run_cli(["run", str(task), "--out", str(tmp_path / "e"), "--quiet"]), 2, "needs a local 'hf:'"))
    for proc, code, words in cases:
        assert proc.returncode == code, (words, proc.stderr)
        assert words in _one_line_error(proc)


def test_a_planted_key_reaches_no_file_the_run_wrote(llama_server, make_task, tmp_path):
    secret = "sk-planted-" + "7f3a9c1e" * 4
    cache = tmp_path / "cache"
    with FaultProxy(llama_server.url) as proxy:
        task = make_task(_settings(proxy.url, api_key_env="ADVISE_PLANTED_KEY"), n_eval=4)
        env = {"ADVISE_PLANTED_KEY": secret, "ADVISE_CACHE": str(cache)}
        proc = run_cli(["run", str(task), "--out", str(tmp_path / "run"), "--latency-probe", "1",
                        "--json-out", str(tmp_path / "copy.json")], env=env)
        assert proc.returncode == 0, proc.stderr
        # The key did go to the server (so the test would see it if it leaked anywhere)...
        assert any({k.lower(): v for k, v in h.items()}.get("authorization") == f"Bearer {secret}"
                   for h in proxy.headers_seen)
    # ...and it is in no file the run wrote, nor in what it printed.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != task]
    assert any(p.name == "advise.sqlite" for p in written) and any(p.name == "results.json" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in proc.stdout + proc.stderr


def test_dry_run_estimates_tokens_and_dollars_and_sends_nothing(make_task, tmp_path):
    with FaultProxy("http://127.0.0.1:9") as proxy:  # nothing may reach it
        task = make_task(
            "models:\n"
            f"  mini: {{model: 'openai:gpt-4o-mini', base_url: '{proxy.url}/v1'}}\n"
            f"  small: {{model: 'openai:smollm2', base_url: '{proxy.url}/v1', tokenizer: 'hf:smollm2-135m-instruct'}}\n"
            "prices: {gpt-4o-mini: {input_per_1m_usd: 0.15, output_per_1m_usd: 0.6}}\n", n_eval=6)
        out = tmp_path / "dry.json"
        proc = run_cli(["run", str(task), "--dry-run", "--latency-probe", "0", "--json-out", str(out)])
        assert proc.returncode == 0, proc.stderr
        assert proxy.seen == []
    rows = {r["row"]: r for r in json.loads(out.read_text())["dry_run"]}
    assert set(rows) == {"prompt@mini", "prompt@small"}
    mini, small = rows["prompt@mini"], rows["prompt@small"]
    # The eval items, plus the dev split asked on the two other classification paths and one
    # content-free request (calibration): the run chooses the path on dev (advisor.measure.choose_path).
    from advisor.data import load_dataset
    from advisor.prompting import dev_split
    from advisor.spec import load_task

    spec = load_task(task)
    dev = len(dev_split(spec, load_dataset(spec).train)[0])
    assert dev > 0 and mini["requests"] == 6 + 2 * dev + 1 and mini["tokens_in"] > mini["requests"] * 15
    from advisor.backends.classify_api import enum_budget

    # Which path wins is not known before the dev answers are in: the largest budget, the JSON enum's here.
    assert mini["tokens_out"] == mini["requests"] * max(6, enum_budget(spec.labels, None))
    assert mini["usd"] == pytest.approx((mini["tokens_in"] * 0.15 + mini["tokens_out"] * 0.6) / 1e6)
    assert mini["token_method"].startswith("characters / 4")
    assert small["usd"] is None and small["token_method"] == "tokenizer hf:smollm2-135m-instruct"
