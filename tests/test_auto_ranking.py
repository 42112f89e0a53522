"""scoring.option_ranking: auto, on the real model: each lever row's label-ranking method is
chosen on held-out train items only (the prompt levers' dev split, the adapter's validation
split), never on eval; a forced method is applied to every row and said to be forced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import main

LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
TINY_LORA = "lever_options.lora={max_steps: 4, batch_size: 4, val_fraction: 0.2, eval_every: 2}"


def _run(task: Path, out: Path, *extra: str) -> dict:
    r = CliRunner().invoke(main, ["run", str(task), "--out", str(out), "--latency-probe", "0", "--quiet",
                                  "--set", "levers=[prompt, prompt-few-shot, lora]", "--set", TINY_LORA,
                                  "--lever", "prompt", "--lever", "lora", *extra],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((out / "results.json").read_text())


def _scramble_eval_golds(task: Path) -> None:
    path = task.parent / "data" / "eval.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for row in rows:  # every gold moves to the next label: every eval figure changes
        row["output"] = LABELS[(LABELS.index(row["output"]) + 1) % len(LABELS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_auto_chooses_each_rows_method_on_held_out_train_items_never_on_eval(trec_small, tmp_path):
    first = _run(trec_small, tmp_path / "a")
    by_row = {lv["name"]: lv for lv in first["levers"]}
    assert first["scoring"]["option_ranking"] == "auto"
    prompt, lora = by_row["prompt"]["option_ranking"], by_row["lora"]["option_ranking"]
    assert prompt["natural"] == "calibrated" and lora["natural"] == "sum"
    assert prompt["held_out"]["split"] == "dev" and prompt["held_out"]["n"] == 30  # min(dev_size 40, half of 60)
    assert lora["held_out"]["split"] == "validation" and lora["held_out"]["n"] == 12  # 0.2 of 60, never trained on
    for choice in (prompt, lora):
        assert choice["why"] in ("natural", "switched")
        assert set(choice["held_out"]["scores"]) == {"calibrated", "calibrated_prefix", "mean", "sum", "first_token"}
        assert (choice["method"] == choice["natural"]) == (choice["why"] == "natural")
        assert choice["held_out"]["rule"].startswith("exact McNemar")
    # The eval figure under the row's method is what the scorecard shows; the others are a check.
    sens = first["scoring"]["sensitivity"]
    assert set(sens["lora"]) == {"calibrated", "calibrated_prefix", "mean", "sum", "first_token"} - {lora["method"]}
    assert all("state" in cell and "place" in cell for cell in sens["lora"].values())

    _scramble_eval_golds(trec_small)
    second = _run(trec_small, tmp_path / "a")  # the same run folder: its store answers again
    again = {lv["name"]: lv for lv in second["levers"]}
    for name in ("prompt", "lora"):
        assert again[name]["option_ranking"] == by_row[name]["option_ranking"]  # eval golds are never read
        assert again[name]["computed_predictions"] == 0  # the same questions: answered from the store
    assert again["prompt"]["metrics"]["accuracy"] != by_row["prompt"]["metrics"]["accuracy"]


@pytest.mark.slow
def test_a_forced_method_applies_to_every_row_and_says_so(trec_small, tmp_path):
    got = _run(trec_small, tmp_path / "forced", "--set", "scoring.option_ranking=mean")
    assert got["scoring"]["option_ranking"] == "mean"
    for lv in got["levers"]:
        assert lv["option_ranking"]["method"] == "mean" and lv["option_ranking"]["why"] == "forced"
        assert lv["option_ranking"]["held_out"] is None
        assert "mean" not in got["scoring"]["sensitivity"][lv["name"]]
