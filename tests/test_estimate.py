"""`advise run --dry-run` (advisor/estimate.py) on the TREC sample: what the prompt levers would send."""

from __future__ import annotations

from pathlib import Path

from advisor.estimate import estimate
from advisor.spec import load_task

TREC = Path(__file__).resolve().parents[1] / "sample_tasks" / "trec" / "task.yaml"


def test_few_shot_dev_requests_are_counted_with_their_demonstrations():
    """The wording search asks every wording on the dev split as the lever renders it: a few-shot
    lever's dev requests carry its k demonstrations (they were counted zero-shot: 37-44% too few
    tokens in, measured by a fresh user against a real run)."""
    task = load_task(TREC)
    rows = {r.row: r for r in estimate(task, ["prompt", "prompt-few-shot"], limit=6, latency_probe=0)}
    zero, few = rows["prompt"], rows["prompt-few-shot"]
    from advisor.plan import plan_run
    from advisor.prompting import dev_split

    plan = plan_run(task, ["prompt"], 6, audit=False)  # --limit shrinks the dev split too, as the run does
    dev = len(dev_split(plan.task, plan.data.train)[0])
    wordings = 1 + len(task.prompt.variants)
    assert dev > 0 and zero.requests == few.requests == wordings * dev + 6
    # Six demonstrations (lever_options: k 6; a question and its label, about 20 tokens each, as turns)
    # on a prompt of about 250: every few-shot request is at least half as long again as the zero-shot
    # one (counted zero-shot, the dev requests made the two rows differ by 15% only).
    assert few.tokens_in > 1.5 * zero.tokens_in
