"""Which option-ranking method works with this model: accuracy of each on real tasks.

    python bench/option_ranking.py [--limit N]

Scores TREC (sample_tasks/trec, the prompt and prompt-few-shot levers' prompts) and the
label-length field case (tests/fixtures/field_cases/07-label-length, the same label spelled short
and long) once, then ranks the labels with every method from the same log-likelihoods, so the
methods differ only in how they rank. Prints accuracy per method and, for the label-length
case, how many predictions the spelling changed.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.backends import make_backend  # noqa: E402
from advisor.data import load_dataset  # noqa: E402
from advisor.prompting import make_request, render_messages  # noqa: E402
from advisor.ranking import best_option  # noqa: E402
from advisor.spec import load_task  # noqa: E402
from advisor.types import OPTION_RANKINGS  # noqa: E402


def predictions(backend, task, examples, shots) -> dict[str, list[str]]:
    """Predicted label per example under each method, from one scoring pass."""
    reqs = [make_request(task, ex, render_messages(task, ex, shots)) for ex in examples]
    prompts = [backend.prompt_ids(r.messages) for r in reqs]
    logps, _ = backend.option_logprobs(prompts, [list(r.options) for r in reqs], 8)
    refs = backend._content_free_logprobs(reqs, 8)
    labels = list(task.labels)
    ids = [backend._option_ids(o) for o in labels]
    out = {}
    for method in OPTION_RANKINGS:
        out[method] = [labels[best_option(method, lp, ref, ids)[0]] for lp, ref in zip(logps, refs)]
    return out


def accuracy(examples, preds) -> float:
    return sum(ex.output == p for ex, p in zip(examples, preds)) / len(examples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100, help="TREC eval items (300 in all)")
    args = ap.parse_args()

    case = ROOT / "tests/fixtures/field_cases/07-label-length"
    backend = make_backend(load_task(case / "task.yaml"))
    short_task, long_task = load_task(case / "task.yaml"), load_task(case / "task_long.yaml")
    s_data, l_data = load_dataset(short_task), load_dataset(long_task)
    s_pred = predictions(backend, short_task, s_data.eval, [])
    l_pred = predictions(backend, long_task, l_data.eval, [])
    long_label = long_task.labels[1]
    print(f"label length (07), {len(s_data.eval)} items: accuracy short / long, predictions the spelling changed")
    for m in OPTION_RANKINGS:
        mapped = ["other" if p == long_label else p for p in l_pred[m]]
        changed = sum(a != b for a, b in zip(s_pred[m], mapped))
        print(f"{m:<18} {accuracy(s_data.eval, s_pred[m]):.3f} / {accuracy(l_data.eval, l_pred[m]):.3f}   "
              f"changed {changed}/{len(mapped)}   other-predictions short {s_pred[m].count('other')}, "
              f"long {mapped.count('other')}", flush=True)

    trec = load_task(ROOT / "sample_tasks/trec/task.yaml")
    data = load_dataset(trec, limit=args.limit)
    shots = random.Random(0).sample(data.train, 6)  # the few-shot lever's `random, k 6, seed 0`
    print(f"\nTREC, first {len(data.eval)} eval items: accuracy", flush=True)
    print(f"{'method':<18} {'prompt':>8} {'few-shot':>9}")
    zero = predictions(backend, trec, data.eval, [])
    few = predictions(backend, trec, data.eval, shots)
    for m in OPTION_RANKINGS:
        print(f"{m:<18} {accuracy(data.eval, zero[m]):>8.3f} {accuracy(data.eval, few[m]):>9.3f}", flush=True)


if __name__ == "__main__":
    main()
