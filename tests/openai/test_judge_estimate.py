"""`advise run --dry-run` with a `rubric:`: the judge's requests, tokens and dollars per row, apart from the
lever's, at the judge's own price, counted from the grading code's own request shape; nothing is sent."""

from __future__ import annotations

import json

import pytest
from openai_helpers import run_cli
from openai_proxy import FaultProxy

from advisor.data import load_dataset
from advisor.judge.rubric import judge_messages
from advisor.spec import load_task
from tests.judge_fixtures import CRITERIA

N_EVAL, SAMPLES, JUDGE_BUDGET, ANSWER_BUDGET = 5, 3, 40, 60


def _task(make_task, url: str, mode: str, rubric: bool = True):
    judge = (f"rubric:\n  judge: {{model: 'openai:gpt-4o-mini', base_url: '{url}/v1'}}\n  mode: {mode}\n"
             f"  samples: {SAMPLES}\n  temperature: 0.7\n  max_new_tokens: {JUDGE_BUDGET}\n" + CRITERIA)
    return make_task(
        f"model: openai:replier\nopenai: {{base_url: '{url}/v1'}}\n"
        "prices:\n  replier: {input_per_1m_usd: 5.0, output_per_1m_usd: 20.0}\n"
        "  gpt-4o-mini: {input_per_1m_usd: 0.15, output_per_1m_usd: 0.6}\n" + (judge if rubric else ""),
        kind="support-replies", n_eval=N_EVAL, max_new_tokens=ANSWER_BUDGET, folder=f"task-{mode}-{rubric}")


def _dry(task, tmp_path, *more: str) -> dict:
    out = tmp_path / f"{task.parent.name}.json"
    proc = run_cli(["run", str(task), "--dry-run", "--latency-probe", "0", "--json-out", str(out), *more])
    assert proc.returncode == 0, proc.stderr
    return {r["row"]: r for r in json.loads(out.read_text())["dry_run"]}


@pytest.mark.parametrize("mode, calls_per_output", [("per_criterion", 2), ("joint", 1)])
def test_dry_run_counts_the_judge_apart_at_its_price_and_sends_nothing(make_task, tmp_path, mode, calls_per_output):
    with FaultProxy("http://127.0.0.1:9") as proxy:  # nothing may reach it
        task = _task(make_task, proxy.url, mode)
        rows = _dry(task, tmp_path)
        plain = _dry(_task(make_task, proxy.url, mode, rubric=False), tmp_path)
        table = run_cli(["run", str(task), "--dry-run", "--latency-probe", "0"], env={"COLUMNS": "200"})
        assert proxy.seen == []
    assert table.returncode == 0, table.stderr
    own_row = [line for line in table.stdout.splitlines() if "prompt (judge)" in line]
    assert len(own_row) == 2 and "openai:gpt-4o-mini" in own_row[0]  # its table row, and how it was priced
    assert "the judge's: $" in table.stdout
    row = rows["prompt"]
    judge = row.pop("judge")
    # The lever's own figures are what they are without a rubric: the judge is counted apart.
    assert plain["prompt"].pop("judge") is None and row == plain["prompt"]
    # One request per eval item, per criterion (per_criterion) or per item (joint), per sample: 2 criteria.
    assert judge["model"] == "openai:gpt-4o-mini"
    assert judge["requests"] == N_EVAL * calls_per_output * SAMPLES
    assert judge["tokens_out"] == judge["requests"] * JUDGE_BUDGET
    # Tokens in: the judge prompt with each item's input and an answer of the lever's whole budget
    # (characters / 4 plus 4 per message, the rule with no local tokenizer), counted here on its own.
    spec = load_task(task)
    crits = spec.rubric.criteria
    groups = [[c] for c in crits] if mode == "per_criterion" else [list(crits)]
    own = sum((sum(len(m["content"]) // 4 + 4 for m in judge_messages(spec.rubric, g, ex.input, "")) + ANSWER_BUDGET)
              * SAMPLES for ex in load_dataset(spec).eval for g in groups)
    assert judge["tokens_in"] == own
    # Priced at the judge's price (gpt-4o-mini under prices:), not the graded model's.
    assert judge["usd"] == pytest.approx((judge["tokens_in"] * 0.15 + judge["tokens_out"] * 0.6) / 1e6)
    assert judge["priced"] == "task.yaml (prices)"
    assert "estimate" in judge["token_method"]
    assert row["usd"] == pytest.approx((row["tokens_in"] * 5.0 + row["tokens_out"] * 20.0) / 1e6)


def test_dry_run_judge_follows_limit_and_an_unknown_judge_price_stays_unknown(make_task, tmp_path):
    with FaultProxy("http://127.0.0.1:9") as proxy:
        task = _task(make_task, proxy.url, "per_criterion")
        task.write_text(task.read_text().replace("  gpt-4o-mini: {input_per_1m_usd: 0.15, output_per_1m_usd: 0.6}\n", ""))
        rows = _dry(task, tmp_path, "--limit", "2")
        assert proxy.seen == []
    judge = rows["prompt"]["judge"]
    assert judge["requests"] == 2 * 2 * SAMPLES  # the limited eval items only
    # gpt-4o-mini at a server of its own (not api.openai.com): the shipped table does not apply.
    assert judge["usd"] is None and judge["priced"].startswith("unknown price")


def test_dry_run_with_a_judge_key_unset_names_the_rubric_judge_line(make_task, tmp_path, monkeypatch):
    """As the run's preflight would: the judge's own settings are named at task.yaml's judge line, one line."""
    monkeypatch.delenv("ADVISE_NO_SUCH_KEY", raising=False)
    with FaultProxy("http://127.0.0.1:9") as proxy:
        task = _task(make_task, proxy.url, "joint")
        text = task.read_text().replace("base_url: '" + proxy.url + "/v1'}\n  mode",
                                        "base_url: '" + proxy.url + "/v1', api_key_env: ADVISE_NO_SUCH_KEY}\n  mode")
        task.write_text(text)
        proc = run_cli(["run", str(task), "--dry-run"])
        assert proxy.seen == []
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if t.startswith("  judge:"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {task}:{line}: rubric.judge: no API key") and "ADVISE_NO_SUCH_KEY" in proc.stderr
