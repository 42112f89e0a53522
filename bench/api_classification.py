"""The TREC sample's prompt levers through a served model against the same model run locally.

A real llama.cpp server (xllamacpp) serves the embedded SmolLM2-135M (its Q4_1 GGUF) behind the
`openai:` backend; the local run uses the same model through transformers. Same eval items (the
first N of the sample's eval set), same dev split (the sample's own, from train). Prints per row:
accuracy with its interval, the classification path and why, the label-ranking method and why,
the off-label share and the probability on label tokens, how many eval answers calibration
changes, what the model said first on the items it answered ABBR, and the paired difference
served - local (exact McNemar on the discordant items).

    .venv/bin/python bench/api_classification.py [--items 40] [--levers prompt,prompt-few-shot]

Issue 26's check: the off-label share is shown and warned about, no article is credited to ABBR,
calibrated ranking changes answers, and the served figure is within the noise of the local one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "openai"))  # the test suite's server launcher

from openai_helpers import LlamaServer  # noqa: E402

from advisor.runner import Runner  # noqa: E402
from advisor.spec import load_task  # noqa: E402
from advisor.stats import mcnemar_exact  # noqa: E402


def write_task(folder: Path, items: int, levers: list[str], served: str | None) -> Path:
    """The TREC sample task with its first `items` eval items, on the server at `served` (else local)."""
    src = ROOT / "sample_tasks" / "trec"
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "data").mkdir(parents=True)
    shutil.copy(src / "data" / "train.jsonl", folder / "data" / "train.jsonl")
    lines = (src / "data" / "eval.jsonl").read_text().splitlines()[:items]
    (folder / "data" / "eval.jsonl").write_text("\n".join(lines) + "\n")
    text = (src / "task.yaml").read_text()
    text = text.replace("levers: [prompt, prompt-few-shot, rag, lora]", f"levers: [{', '.join(levers)}]")
    if served:
        text = text.replace("model: hf:smollm2-135m-instruct",
                            f"model: openai:smollm2\nopenai: {{base_url: '{served}', max_concurrency: 4}}")
    (folder / "task.yaml").write_text(text)
    return folder / "task.yaml"


def run(task_file: Path, out: Path) -> dict:
    runner = Runner(load_task(task_file), out, latency_probe=0)
    try:
        result = runner.run()
    finally:
        runner.store.close()
    levers = {r.name: r for r in result.levers}
    rows = {}
    for lv in result.to_json()["levers"]:
        preds = levers[lv["name"]].predictions
        changed = sum(1 for p in preds if (p.context.get("ranking_alternatives") or {}).get("first_token")
                      not in (None, (p.context.get("ranking_alternatives") or {}).get("calibrated", p.raw)))
        firsts: dict[str, int] = {}
        for p in preds:
            if p.output == "ABBR" and "answer" in p.context:
                firsts[p.context["answer"]] = firsts.get(p.context["answer"], 0) + 1
        rows[lv["name"]] = {"row": lv, "correct": [float(x) for x in levers[lv["name"]].scores.per_item["accuracy"]],
                            "changed_by_calibration": changed, "abbr_first_tokens": firsts}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--levers", default="prompt,prompt-few-shot")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-api-classification")
    args = ap.parse_args()
    levers = args.levers.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    server = LlamaServer(args.out / "server.log")
    try:
        served = run(write_task(args.out / "served-task", args.items, levers, server.base_url), args.out / "served")
    finally:
        server.stop()
    local = run(write_task(args.out / "local-task", args.items, levers, None), args.out / "local")
    summary = {}
    for name in levers:
        s, loc = served[name], local[name]
        row, lrow = s["row"], loc["row"]
        acc, lacc = row["metrics"]["accuracy"], lrow["metrics"]["accuracy"]
        off = row.get("off_label") or {}
        p = mcnemar_exact(s["correct"], loc["correct"])
        print(f"\n== {name}: served {acc['value']:.3f} ({acc['ci_low']:.3f}-{acc['ci_high']:.3f}) vs local "
              f"{lacc['value']:.3f} ({lacc['ci_low']:.3f}-{lacc['ci_high']:.3f}); served - local "
              f"{acc['value'] - lacc['value']:+.3f}, exact McNemar p={p:.3f}")
        print(f"   path: {row.get('classification_path')} - {(row.get('classification_choice') or {}).get('reason')}")
        print(f"   ranking: {(row.get('option_ranking') or {}).get('reason')}")
        print(f"   local ranking: {(lrow.get('option_ranking') or {}).get('reason')}")
        print(f"   off-label {off.get('items')} of {row['n_eval']} ({off.get('share')}), mean label mass "
              f"{off.get('label_mass')}, unmappable {row.get('unmappable')}, items with a label outside the top "
              f"tokens {off.get('labels_unseen_items')}; warning: {off.get('warning')}")
        print(f"   eval answers calibration changes (first_token -> calibrated): {s['changed_by_calibration']}")
        print(f"   first tokens of the items answered ABBR: {s['abbr_first_tokens']}")
        summary[name] = {"served": acc, "local": lacc, "mcnemar_p": p, "off_label": off,
                         "path": row.get("classification_choice"), "ranking": row.get("option_ranking"),
                         "changed_by_calibration": s["changed_by_calibration"],
                         "abbr_first_tokens": s["abbr_first_tokens"]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nsummary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
