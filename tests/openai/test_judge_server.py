"""A rubric graded end to end by a real judge behind llama.cpp (the embedded SmolLM2: its grades are poor,
the point is the plumbing), then `advise label` from scripted stdin and from a CSV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

N_EVAL = 4
SECRET = "sk-judge-secret-never-written"
RUBRIC = """\
rubric:
  judge: {{model: openai:smollm2, base_url: '{url}', api_key_env: ADVISE_TEST_JUDGE_KEY}}
  criteria:
    - name: owns_problem
      question: Does the reply say sorry and own the customer's problem?
      pass: names the problem in a few words and says it is on us
      fail: apologises vaguely, blames the customer, or quotes a policy
    - name: one_step
      question: Does the reply offer exactly one concrete next step?
      pass: one replacement, refund, label, credit, part or thing to try
      fail: no next step, or several
"""


def advise(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("advise")
    env = {**os.environ, "ADVISE_TEST_JUDGE_KEY": SECRET}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, input=stdin, env=env,
                          timeout=900)


def test_rubric_graded_by_a_real_judge_cached_labelled(llama_server, make_task, tmp_path):
    settings = (f"model: openai:smollm2\nopenai: {{base_url: '{llama_server.base_url}', max_concurrency: 4}}\n"
                "prices: {smollm2: {input_per_1m_usd: 1.0, output_per_1m_usd: 2.0}}\n" + RUBRIC.format(url=llama_server.base_url))
    task = make_task(settings, kind="support-replies", n_eval=N_EVAL, n_train=6, max_new_tokens=40)
    out = tmp_path / "run"
    first = advise(["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"])
    assert first.returncode == 0, first.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    lever = res["levers"][0]
    judge = lever["details"]["judge"]
    for crit in ("owns_problem", "one_step"):
        c = judge["criteria"][crit]
        assert c["scored"] + c["unscored"] == N_EVAL  # every grade pass, fail or unscored, none lost
        assert len(c["prompt_hash"]) == 64
        if c["scored"]:
            assert crit in lever["metrics"]  # a metric with its interval, over the scored items
    cost = judge["cost"]
    assert cost["requests"] >= 2 and cost["tokens_in"] > 0 and cost["usd"] > 0  # the judge's own, priced
    assert "same model or family" in judge["warnings"][0]  # smollm2 judges smollm2
    assert res["judge"][lever["name"]]["owns_problem"]["human"] == 0

    again = advise(["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"])
    assert again.returncode == 0, again.stderr[-2000:]
    judge2 = json.loads((out / "results.json").read_text())["levers"][0]["details"]["judge"]
    assert judge2["cost"]["requests"] == 0 and judge2["cost"]["cached"] == cost["requests"]
    assert judge2["criteria"] == judge["criteria"]

    # Human grades: 2 sampled outputs from scripted stdin, the rest from a CSV.
    labelled = advise(["label", str(out), "-n", "2", "--seed", "1"], stdin="p\nf\nf\np\n")
    assert labelled.returncode == 0, labelled.stderr[-2000:]
    assert "OUTPUT:" in labelled.stdout and "Judge (rubric criteria)" in labelled.stdout and "4 grades recorded" in labelled.stdout
    labels_file = task.parent / "labels.jsonl"
    assert len(labels_file.read_text().splitlines()) == 4
    ids = [json.loads(line)["id"] for line in (task.parent / "data" / "eval.jsonl").read_text().splitlines()]
    csv = tmp_path / "grades.csv"
    csv.write_text("example_id,criterion,grade\n" + "".join(
        f"{i},{c},{'pass' if k % 2 else 'fail'}\n" for k, i in enumerate(ids) for c in ("owns_problem", "one_step")))
    imported = advise(["label", str(out), "--import", str(csv)])
    assert imported.returncode == 0, imported.stderr[-2000:]
    section = json.loads((out / "results.json").read_text())["judge"][lever["name"]]
    for crit in ("owns_problem", "one_step"):
        e = section[crit]
        assert e["human"] == N_EVAL
        if e["scored"] >= 2:
            assert e["agreement"]["n"] == e["scored"] and -1 <= e["agreement"]["kappa"] <= 1
    csv.write_text("example_id,criterion,grade\nnot-an-item,owns_problem,pass\n")
    refused = advise(["label", str(out), "--import", str(csv)])
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and ":2: example_id: unknown item" in refused.stderr

    # A judge budget too small for the JSON: a new prompt hash (graded anew), every grade unscored and counted.
    short = advise(["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet",
                    "--set", "rubric.max_new_tokens=4"])
    assert short.returncode == 0, short.stderr[-2000:]
    lever3 = json.loads((out / "results.json").read_text())["levers"][0]
    j3 = lever3["details"]["judge"]
    assert j3["cost"]["requests"] > 0
    assert all(c["unscored"] == N_EVAL and c["rate"] is None for c in j3["criteria"].values())
    assert "owns_problem" not in lever3["metrics"]  # no grade read: no rate, not a 0
    # The judge's key (read from the variable the rubric names) is in no file the runs wrote.
    written = [p for folder in (out, task.parent) for p in folder.rglob("*") if p.is_file()]
    assert written and not any(SECRET.encode() in p.read_bytes() for p in written)
    assert SECRET not in short.stdout + short.stderr + first.stderr
