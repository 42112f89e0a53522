"""A rubric graded end to end by a real judge behind llama.cpp (the embedded SmolLM2: its grades are poor,
the point is the plumbing), then `advise label` from scripted stdin and from a CSV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai_helpers import stored_predictions

from tests.judge_fixtures import CRITERIA

pytestmark = pytest.mark.slow

N_EVAL = 4
SECRET = "sk-judge-secret-never-written"
RUBRIC = ("rubric:\n  judge: {{model: openai:smollm2, base_url: '{url}', api_key_env: ADVISE_TEST_JUDGE_KEY}}\n"
          + CRITERIA)  # no braces in it: .format(url=...) leaves it as it is


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
    csv = tmp_path / "grades.csv"  # the rest: a CSV grade contradicting a recorded one is refused without --replace
    asked = {(r["example_id"], r["criterion"]) for r in map(json.loads, labels_file.read_text().splitlines())}
    csv.write_text("example_id,criterion,grade\n" + "".join(
        f"{i},{c},{'pass' if k % 2 else 'fail'}\n" for k, i in enumerate(ids) for c in ("owns_problem", "one_step")
        if (i, c) not in asked))
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


def test_a_judge_people_disagree_with_is_refused_not_trusted(llama_server, make_task, tmp_path):
    """A criterion as target.metric graded by the real judge; human grades that contradict it (every one
    the opposite of the judge's) show up as a refused criterion, and the verdict will not decide on it."""
    from advisor.store import RunStore

    n_eval = 6
    settings = (f"model: openai:smollm2\nopenai: {{base_url: '{llama_server.base_url}', max_concurrency: 4}}\n"
                + RUBRIC.format(url=llama_server.base_url))
    task = make_task(settings, kind="support-replies", n_eval=n_eval, n_train=6, max_new_tokens=40)
    task.write_text(task.read_text().replace("metric: pass_all", "metric: owns_problem"))
    out = tmp_path / "run"
    args = ["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet"]
    first = advise(args)
    assert first.returncode == 0, first.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    lever = res["levers"][0]
    basis = lever["verdict"]["basis"]
    assert res["target"]["metric"] == "owns_problem"
    scored = lever["details"]["judge"]["criteria"]["owns_problem"]["scored"]
    if scored:  # no human grades yet: the judge's own rate, and the verdict says it is the judge's only
        assert "judge only, not checked against people" in basis, basis
    store = RunStore(out / "advise.sqlite")
    try:
        grades = store.run_grades(res["run_id"], lever["name"])["owns_problem"]
    finally:
        store.close()
    judged = {ex: g for ex, (_, g) in grades.items() if g is not None}
    assert len(judged) >= 3, f"the judge scored only {len(judged)} of {n_eval}: too few to test agreement"
    people = tmp_path / "people.csv"  # a person who grades the opposite of the judge on every scored output
    people.write_text("example_id,criterion,grade\n" + "".join(
        f"{ex},owns_problem,{'fail' if g == 1.0 else 'pass'}\n" for ex, g in judged.items()))
    labelled = advise(["label", str(out), "--import", str(people)])
    assert labelled.returncode == 0, labelled.stderr[-2000:]
    assert "reads these grades at the next `advise run`" in labelled.stdout
    again = advise(args)
    assert again.returncode == 0, again.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    lever = res["levers"][0]
    agree = res["judge"][lever["name"]]["owns_problem"]["agreement"]
    assert agree["state"] == "refused" and agree["kappa_high"] < agree["min_kappa"]
    assert lever["details"]["judge"]["cost"]["requests"] == 0  # the same outputs: every grade read back
    assert lever["verdict"]["state"] == "undecided"  # not a confident meets or fails
    assert res["verdict"]["outcome"] == "undecided" and res["verdict"]["lever"] is None
    basis = lever["verdict"]["basis"]
    assert "disagrees with people" in basis and f"kappa {agree['kappa']:.2f}" in basis and "min_kappa 0.6" in basis
    assert "disagrees with people" in res["verdict"]["reason"]
    # pass_all over the checks and, with rubric.in_pass_all, every criterion too (the criteria cached).
    checks_only = lever["metrics"]["pass_all"]["value"]
    both = advise([*args, "--set", "rubric.in_pass_all=true", "--set", "target.metric=pass_all"])
    assert both.returncode == 0, both.stderr[-2000:]
    res3 = json.loads((out / "results.json").read_text())
    lever3 = res3["levers"][0]
    assert lever3["details"]["judge"]["cost"]["requests"] == 0
    basis3 = lever3["verdict"]["basis"]
    # pass_all rests on owns_problem, which people contradicted: not decided either
    assert basis3.startswith("pass_all is not decided: it includes owns_problem"), basis3
    assert lever3["verdict"]["state"] == "undecided"
    if "pass_all" in lever3["metrics"]:
        assert lever3["metrics"]["pass_all"]["value"] <= checks_only + 1e-9  # criteria can only take passes away
    print(f"\npass_all with criteria: {basis3}")
    print(f"\nreal judge vs contradicting people: kappa {agree['kappa']:.2f} "
          f"({agree['kappa_low']:.2f} to {agree['kappa_high']:.2f}) on {agree['n']} items; {basis}")


def test_judge_samples_at_temperature_count_flips(llama_server, make_task, tmp_path):
    """rubric.samples 3 at temperature 1: every output graded 3 times by the real judge, cached per sample;
    the flips across samples are counted with their ids and the verdict's bounds include the judge's noise."""
    n_eval = 4
    rubric = RUBRIC.format(url=llama_server.base_url).replace("  criteria:\n",
                                                             "  samples: 3\n  temperature: 1.0\n  criteria:\n")
    settings = (f"model: openai:smollm2\nopenai: {{base_url: '{llama_server.base_url}', max_concurrency: 4}}\n"
                + rubric)
    task = make_task(settings, kind="support-replies", n_eval=n_eval, n_train=6, max_new_tokens=40)
    task.write_text(task.read_text().replace("metric: pass_all", "metric: one_step"))
    out = tmp_path / "run"
    args = ["run", str(task), "--out", str(out), "--latency-probe", "0"]
    first = advise(args)
    assert first.returncode == 0, first.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    judge = res["levers"][0]["details"]["judge"]
    assert judge["cost"]["requests"] == 3 * 2 * n_eval  # 3 samples x 2 criteria x 4 outputs
    for crit, c in judge["criteria"].items():
        assert c["samples"] == 3 and 0 <= c["flips"] == len(c["flip_ids"]) <= n_eval
        assert c["scored"] + c["unscored"] == n_eval and c["ties"] <= c["unscored"]
        print(f"\n{crit}: flip rate {c['flip_rate']:.2f} ({c['flips']} of {n_eval}), ties {c['ties']}")
    assert "grades per output" in first.stdout  # the terminal says how many flipped
    assert "by length (terciles" in first.stdout or judge["criteria"]["one_step"]["scored"] < 3
    basis = res["levers"][0]["verdict"]["basis"]
    assert basis.startswith("one_step")
    if judge["criteria"]["one_step"]["scored"] and "judge only" in basis:
        assert "judge noise included" in basis
    again = advise(args)
    assert again.returncode == 0, again.stderr[-2000:]
    judge2 = json.loads((out / "results.json").read_text())["levers"][0]["details"]["judge"]
    assert judge2["cost"]["requests"] == 0 and judge2["criteria"] == judge["criteria"]  # every sample cached


def test_a_judge_without_its_key_or_server_fails_at_start_before_any_lever_works(llama_server, make_task, tmp_path):
    """The judge's key and server are checked before the levers spend anything (a fresh user once waited
    for a whole lever, then met 'cannot reach the model server' without being told it was the judge's)."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    settings = f"model: openai:smollm2\nopenai: {{base_url: '{llama_server.base_url}'}}\n"
    for url, env_key, want in ((dead, SECRET, "the rubric's judge (openai:smollm2): cannot reach the model server"),
                               (llama_server.base_url, None, "ADVISE_TEST_JUDGE_KEY is not set")):
        task = make_task(settings + RUBRIC.format(url=url), kind="support-replies", n_eval=N_EVAL, n_train=6,
                         max_new_tokens=40, folder=f"task-{bool(env_key)}")
        out = tmp_path / f"run-{bool(env_key)}"
        env = {k: v for k, v in os.environ.items() if k != "ADVISE_TEST_JUDGE_KEY"}
        if env_key:
            env["ADVISE_TEST_JUDGE_KEY"] = env_key
        proc = subprocess.run([str(Path(sys.executable).with_name("advise")), "run", str(task), "--out", str(out),
                               "--quiet"], capture_output=True, text=True, env=env, timeout=600)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and want in lines[0], proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert stored_predictions(out) == 0  # nothing was asked of the lever's model
