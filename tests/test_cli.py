"""The `advise` command, driven with CliRunner and as a real subprocess, on the real model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _advise_cmd() -> list[str]:
    return [sys.executable, "-c", "from advisor.cli import main; main()"]


def _count(db: Path, lever: str) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(str(db), timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM predictions WHERE lever=?", (lever,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


@pytest.mark.slow
def test_run_writes_results_and_a_second_run_recomputes_nothing(trec_small, tmp_path):
    out = tmp_path / "run"
    first = _run("run", str(trec_small), "--out", str(out), "--limit", "12", "--latency-probe", "3",
                 "--json-out", str(tmp_path / "copy.json"))
    assert first.exit_code == 0, first.output
    assert "Recommendation" in first.output
    results = json.loads((out / "results.json").read_text())
    assert json.loads((tmp_path / "copy.json").read_text())["levers"] == results["levers"]
    assert results["task"] == "trec-question-type"
    assert results["schema_version"] == 2
    assert results["target"] == {"metric": "accuracy", "threshold": 0.8, "confidence": 0.95, "rule": "lower_bound",
                                 "margin": 0.0, "need": results["target"]["need"]}
    assert [lv["name"] for lv in results["levers"]] == ["prompt", "prompt-few-shot"]
    for lv in results["levers"]:
        m = lv["metrics"]["accuracy"]
        assert 0.0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1.0
        assert lv["n_eval"] == 12 and lv["computed_predictions"] == 12
        v = lv["verdict"]  # the lower-bound rule (target.rule default)
        assert v["state"] == ("meets" if v["lower_bound"] >= 0.8 else "fails" if v["upper_bound"] < 0.8 else
                              "undecided")
        c = lv["cost"]
        # Setup: scoring the 12 dev items (train) every label-ranking method is checked on.
        assert lv["option_ranking"]["held_out"]["n"] == 12 and c["setup_usd"] > 0 and c["per_1k_queries_usd"] > 0
        assert 0 < c["latency_ms_p50"] <= c["latency_ms_p95"]
        assert set(lv["metrics"]) == {"accuracy", "macro_f1"}
    rec = results["verdict"]
    assert rec["outcome"] in {"recommend", "undecided", "none"} and rec["reason"]
    assert (rec["lever"] is not None) == (rec["outcome"] == "recommend")
    prov = results["provenance"]
    assert prov["model"] == "hf:smollm2-135m-instruct"
    assert prov["versions"]["torch"] and prov["data"]["eval"] and prov["data"]["n_eval"] == 12
    assert "commit" in prov["git"]

    db = out / "advise.sqlite"
    before = {lv: _count(db, lv) for lv in ("prompt", "prompt-few-shot")}
    second = _run("run", str(trec_small), "--out", str(out), "--limit", "12", "--latency-probe", "3", "--quiet")
    assert second.exit_code == 0, second.output
    again = json.loads((out / "results.json").read_text())
    assert [lv["computed_predictions"] for lv in again["levers"]] == [0, 0]
    assert {lv: _count(db, lv) for lv in before} == before
    # Deterministic: the same numbers from the cache as from the model.
    assert [lv["metrics"] for lv in again["levers"]] == [lv["metrics"] for lv in results["levers"]]

    # Changing the system prompt invalidates every entry (12 eval answers and the 12 dev answers the label
    # ranking is checked on); the old ones stay in the store.
    assert before["prompt"] == 24
    changed = _run("run", str(trec_small), "--out", str(out), "--limit", "12", "--latency-probe", "0",
                   "--quiet", "--lever", "prompt", "--set", "prompt.system=Pick a label.")
    assert changed.exit_code == 0, changed.output
    assert json.loads((out / "results.json").read_text())["levers"][0]["computed_predictions"] == 12
    assert _count(db, "prompt") == 48

    shown = _run("show", str(out))
    assert shown.exit_code == 0 and "prompt" in shown.output


BAD_CASES = {
    "malformed yaml": ("task.yaml", "name: x\nkind: [oops\n", "malformed YAML"),
    "unknown key": ("task.yaml", None, "unknown key"),
    "broken jsonl": ("data/eval.jsonl", '{"input": "a", "output": "NUM"}\n{"input": \n', "eval.jsonl:2"),
    "unknown label": ("data/eval.jsonl", '{"input": "a", "output": "NUMBER"}\n', "unknown label 'NUMBER'"),
    "empty eval": ("data/eval.jsonl", "", "eval set is empty"),
    "unknown lever": ("task.yaml", None, "levers: unknown lever 'promt'. Did you mean 'prompt'?"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_exits_2_with_one_line(trec_small, case):
    rel, content, expected = BAD_CASES[case]
    target = trec_small.parent / rel
    if case == "unknown key":
        content = target.read_text().replace("target:", "targt: 1\ntarget:", 1)
    elif case == "unknown lever":
        content = target.read_text().replace("levers: [prompt, prompt-few-shot]", "levers: [promt, prompt-few-shot]")
    target.write_text(content)
    for command in ("validate", "run"):
        proc = subprocess.run([*_advise_cmd(), command, str(trec_small), "--out", str(trec_small.parent / "o")]
                              if command == "run" else [*_advise_cmd(), command, str(trec_small)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr


def test_missing_task_file_and_usage_errors(tmp_path):
    r = _run("validate", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2 and "task file not found" in r.output
    r = _run("run", str(tmp_path / "nope.yaml"), "--set", "novalue")
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    r = CliRunner().invoke(main, ["run"])
    assert r.exit_code == 2  # click's usage error


@pytest.mark.slow
def test_learning_curve_is_shown_and_the_verdict_reads_it(trec_small, tmp_path):
    out = tmp_path / "run"
    tiny = "{max_len: 64, batch_size: 4, max_steps: 2, val_fraction: 0.25, learning_rate: 0.001}"
    r = _run("run", str(trec_small), "--out", str(out), "--lever", "lora", "--limit", "8", "--latency-probe", "1",
             "--learning-curve", "0.5,1.0", "--set", "levers=[prompt, prompt-few-shot, lora]", "--set", f"lever_options.lora={tiny}",
             "--set", "target.threshold=0.99")
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    curve = results["learning_curves"]["lora"]
    assert [p["n_train"] for p in curve["points"]] == [30, 60] and curve["message"]
    # The full-size point is the adapter the lever itself trained and scored.
    lever = results["levers"][0]
    assert curve["points"][-1]["adapter"] == lever["artifact"]["info"]["adapter"]
    assert curve["points"][-1]["metric"] == pytest.approx(lever["metrics"]["accuracy"]["value"])
    assert "lora: learning curve (accuracy, target 0.99)" in r.output and curve["message"][:40] in r.output
    rec = results["verdict"]
    assert rec["lever"] is None and "lora's learning curve: " + curve["message"] in rec["next_step"]
    assert "--learning-curve" not in rec["next_step"]


def test_validate_and_schema(trec_small):
    r = _run("validate", str(trec_small))
    assert r.exit_code == 0 and "60 train, 24 eval" in r.output
    schema = json.loads(_run("schema").output)
    assert "levers" in schema["properties"]


def _slow_task() -> tuple[Path, int]:
    """A task whose prompt lever generates text (countries, 150 eval items), so a signal sent after the
    first saved batch lands mid-run: TREC's label ranking at batch size 1 finished 120 items before
    the signal arrived on an idle machine (rc 0 instead of 130)."""
    task = Path(__file__).resolve().parent.parent / "sample_tasks" / "countries" / "task.yaml"
    return task, len((task.parent / "data" / "eval.jsonl").read_text().splitlines())


@pytest.mark.slow
def test_kill_9_resumes_where_it_stopped(tmp_path):
    task, n = _slow_task()
    out = tmp_path / "run"
    db = out / "advise.sqlite"
    args = [*_advise_cmd(), "run", str(task), "--out", str(out), "--lever", "prompt", "--batch-size", "1",
            "--latency-probe", "0", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while _count(db, "prompt") < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = _count(db, "prompt")
    assert 4 <= saved < n, f"kill landed at {saved} saved predictions"
    args[args.index("--batch-size") + 1] = "16"  # batch size is not part of the cache key
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["levers"][0]["computed_predictions"] == n - saved
    assert _count(db, "prompt") == n


@pytest.mark.slow
def test_ctrl_c_exits_130_and_keeps_what_is_done(tmp_path):
    task, _ = _slow_task()
    out = tmp_path / "run"
    db = out / "advise.sqlite"
    args = [*_advise_cmd(), "run", str(task), "--out", str(out), "--lever", "prompt", "--batch-size", "1",
            "--latency-probe", "0", "--quiet"]
    # Ctrl-C as a terminal delivers it. A suite started in the background by a non-interactive shell
    # (`make test &`, nohup) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt:
    # the child restores the default disposition first.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while _count(db, "prompt") < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert _count(db, "prompt") >= 4
    status = sqlite3.connect(str(db)).execute("SELECT status FROM runs").fetchall()
    assert status == [("interrupted",)]


def _line_of(path: Path, prefix: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if line.startswith(prefix))


def test_an_error_in_a_command_line_argument_names_the_argument(trec_small, tmp_path):
    out = tmp_path / "run"
    for command in ("validate", "run"):
        extra = ["--out", str(out)] if command == "run" else []
        r = _run(command, str(trec_small), *extra, "--set", "target.treshold=0.9")
        assert r.exit_code == 2
        assert r.output.strip() == ("error: --set target.treshold=0.9: target.treshold: unknown key 'treshold'. "
                                    "Did you mean 'threshold'? (check the spelling; `advise schema` lists the keys)")
        r = _run(command, str(trec_small), *extra, "--set", "x")
        assert r.exit_code == 2 and r.output.strip() == "error: --set x: expected KEY=VALUE, e.g. --set target.threshold=0.9"
        r = _run(command, str(trec_small), *extra, "--set", "data.eval=data/nope.jsonl")
        assert r.exit_code == 2
        assert r.output.strip() == (f"error: --set data.eval=data/nope.jsonl: data.eval: data file not found: "
                                    f"{trec_small.parent / 'data' / 'nope.jsonl'}")
        r = _run(command, str(trec_small), *extra, "--set", "lever_options.prompt-few-shot.kk=1")
        assert r.exit_code == 2
        assert r.output.strip() == ("error: --set lever_options.prompt-few-shot.kk=1: "
                                    "lever_options.prompt-few-shot.kk: unknown option")
    r = _run("run", str(trec_small), "--out", str(out), "--lever", "prompt@gpt")
    assert r.exit_code == 2
    assert r.output.strip() == ("error: --lever prompt@gpt: 'prompt@gpt' names model 'gpt', which `models:` does "
                                "not define; defined: none (add a `models:` section)")
    r = _run("run", str(trec_small), "--out", str(out), "--learning-curve", "2")
    assert r.exit_code == 2 and r.output.strip() == "error: --learning-curve 2: fractions must lie in (0, 1]"


def test_a_setting_error_found_after_loading_names_its_task_yaml_line(trec_small):
    text = trec_small.read_text()
    trec_small.write_text(text.replace("prompt-few-shot: {k: 2, selection: fixed}",
                                       "prompt-few-shot: {k: 2, selection: fixd}"))
    r = _run("validate", str(trec_small))
    assert r.exit_code == 2
    line = _line_of(trec_small, "  prompt-few-shot:")
    assert r.output.startswith(f"error: {trec_small}:{line}: lever_options.prompt-few-shot.selection: ")
    trec_small.write_text(text.replace("eval: data/eval.jsonl", "eval: data/evl.jsonl"))
    r = _run("validate", str(trec_small))
    assert r.exit_code == 2
    assert r.output.strip() == (f"error: {trec_small}:{_line_of(trec_small, '  eval:')}: data.eval: data file not "
                                f"found: {trec_small.parent / 'data' / 'evl.jsonl'}")
    trec_small.write_text(text.replace('template: "Question: {{ input }}\\nType:"', 'template: "{{ input "'))
    r = _run("validate", str(trec_small))
    assert r.exit_code == 2
    assert r.output.startswith(f"error: {trec_small}:{_line_of(trec_small, '  template:')}: prompt.template: "
                               "template syntax: ")
    trec_small.write_text(text.replace("  eval: data/eval.jsonl", "  eval: data/eval.jsonl\n  knowledge: kb/"))
    r = _run("validate", str(trec_small))
    assert r.exit_code == 2
    assert r.output.strip() == (f"error: {trec_small}:{_line_of(trec_small, '  knowledge:')}: data.knowledge: "
                                f"knowledge path not found: {trec_small.parent / 'kb'}")


def test_validate_checks_the_api_key_variable_as_the_run_would_and_never_prints_the_key(trec_small):
    def validate(*sets: str, **env: str | None):
        args = ["validate", str(trec_small), "--set", "model=openai:gpt-4o-mini"]
        for s in sets:
            args += ["--set", s]
        return CliRunner().invoke(main, args, env={"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None, **env})

    r = validate()  # the OpenAI API needs a key: the run would refuse, so validate does
    assert r.exit_code == 2
    assert r.output.strip() == ("error: --set model=openai:gpt-4o-mini: model: no API key: the environment variable "
                                "OPENAI_API_KEY is not set (the task reads the key for openai:gpt-4o-mini from it); "
                                "set it in the shell that runs advise")
    trec_small.write_text(trec_small.read_text() + "openai: {base_url: 'http://127.0.0.1:9/v1', api_key_env: MY_KEY}\n")
    r = validate(MY_KEY=None)  # a variable the task names is needed wherever the server is
    assert r.exit_code == 2
    assert r.output.strip() == (f"error: {trec_small}:{_line_of(trec_small, 'openai:')}: openai.api_key_env: no API key: the "
                                "environment variable MY_KEY is not set (the task reads the key for "
                                "openai:gpt-4o-mini from it); set it in the shell that runs advise")
    # A self-served server with the default variable may check no key: ok, with a note.
    r = validate("openai={base_url: 'http://127.0.0.1:9/v1'}")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == (
        "note: openai:gpt-4o-mini: OPENAI_API_KEY is not set, so no key is sent to http://127.0.0.1:9/v1 (right for "
        "a server that checks none; if it needs one, set the variable, or name yours with api_key_env)")
    secret = "sk-validate-" + "5e1d" * 8
    r = validate("openai={base_url: 'http://127.0.0.1:9/v1'}", OPENAI_API_KEY=secret)
    assert r.exit_code == 0 and "note:" not in r.output and secret not in r.output
    r = validate(MY_KEY=secret)
    assert r.exit_code == 0 and "note:" not in r.output and secret not in r.output


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_that_fails_at_start_leaves_no_folder_and_keeps_an_earlier_ones_work(trec_small, tmp_path):
    down = f"openai={{base_url: 'http://127.0.0.1:{_free_port()}/v1'}}"
    out = tmp_path / "runs" / "new"
    r = _run("run", str(trec_small), "--out", str(out), "--set", "model=openai:smollm2", "--set", down)
    assert r.exit_code == 2 and "cannot reach the model server" in r.output
    assert not (tmp_path / "runs").exists()  # not the run folder, nor the folder it would have made for it
    r = _run("run", str(trec_small), "--out", str(out), "--set", "lever_options.prompt-few-shot.kk=1")
    assert r.exit_code == 2 and "unknown option" in r.output
    assert not (tmp_path / "runs").exists()
    out.mkdir(parents=True)  # a folder the user made is theirs: emptied of nothing, kept
    r = _run("run", str(trec_small), "--out", str(out), "--set", "model=openai:smollm2", "--set", down)
    assert r.exit_code == 2 and out.is_dir() and list(out.iterdir()) == []

    # An earlier run's store (answers in it) is never removed by a later run that fails at start.
    from advisor.store import RunStore
    from advisor.types import Prediction

    store = RunStore(out / "advise.sqlite")
    store.put_predictions("prompt", "b", [("k1", Prediction("e1", "NUM", "NUM", 3, 1, 0.1, {}))])
    store.close()
    before = (out / "advise.sqlite").read_bytes()
    r = _run("run", str(trec_small), "--out", str(out), "--set", "model=openai:smollm2", "--set", down)
    assert r.exit_code == 2
    assert (out / "advise.sqlite").read_bytes() == before


def test_show_report_and_compare_read_results_json_with_one_loader_and_the_same_errors(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "results.json"

    def errors() -> set[str]:
        out = set()
        for args in (["show", str(run)], ["report", str(run)], ["compare", str(run), str(run)]):
            r = CliRunner().invoke(main, args)
            assert r.exit_code == 2 and "Traceback" not in r.output, (args, r.output)
            out.add(r.output.strip())
        return out

    assert errors() == {f"error: {path}: no results.json here; run 'advise run TASK' (or with --out DIR) first"}
    path.write_text('{"task": "t",\n "levers": [}\n')
    assert errors() == {f"error: {path}:2: broken JSON: Expecting value (column 13)"}
    path.write_text('{"task": "t", "levers": []}\n')
    assert errors() == {f"error: {path}: kind: not an advise results file (no 'kind')"}
    path.write_bytes(b'{"task": "caf\xe9"}\n')
    assert errors() == {f"error: {path}:1: not UTF-8 text (byte 13: 0xe9); save the file as UTF-8"}
    # What Python's json accepts but JSON is not (a metric of NaN: `show` once died formatting it), and
    # nesting too deep for the parser (once a RecursionError): the same one line from every reader.
    path.write_text('{"task": "t",\n "levers": [{"metrics": {"accuracy": {"value": NaN}}}]}\n')
    assert errors() == {f"error: {path}: broken JSON: NaN is not JSON (write null, or a number)"}
    path.write_text("[" * 100_000)
    assert errors() == {f"error: {path}: broken JSON: nested too deeply to read"}


def test_unwritable_output_paths_are_refused_before_any_work(trec_small, tmp_path):
    """Fresh-user finding: --out on a file, --json-out under a file, report --out under a file and an
    uncreatable folder gave tracebacks (exit 1); --json-out was only tried after the whole run."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        ("run", str(trec_small), "--out", str(blocker)),
        ("run", str(trec_small), "--out", str(tmp_path / "r"), "--json-out", str(blocker / "x.json")),
        ("run", str(trec_small), "--out", str(tmp_path / "r"), "--json-out", str(tmp_path)),
        ("run", str(trec_small), "--out", "/proc/advise-cannot-be-here"),
    ]
    for args in cases:
        r = CliRunner().invoke(main, [*args, "--lever", "prompt", "--limit", "2", "--quiet"])
        assert r.exit_code == 2, (args, r.output)
        line = r.output.strip().splitlines()[-1]
        assert line.startswith("error: --") and "Traceback" not in r.output, (args, r.output)
    assert not (tmp_path / "r").exists()  # refused before a run folder was made


def test_a_misspelt_option_of_a_lever_not_run_is_refused_by_every_command(trec_small):
    """Fresh-user finding: validate refused lever_options.prompt-few-shot.kk, run --lever prompt and
    audit accepted it."""
    text = trec_small.read_text()
    assert "prompt-few-shot: {k: 2, selection: fixed}" in text
    trec_small.write_text(text.replace("prompt-few-shot: {k: 2, selection: fixed}", "prompt-few-shot: {kk: 2}"))
    for args in (("validate",), ("run", "--lever", "prompt", "--limit", "2", "--quiet"), ("audit",),
                 ("run", "--dry-run", "--lever", "prompt")):
        r = CliRunner().invoke(main, [args[0], str(trec_small), *args[1:]])
        assert r.exit_code == 2, (args, r.output)
        assert "lever_options.prompt-few-shot.kk" in r.output and "task.yaml:" in r.output, (args, r.output)
