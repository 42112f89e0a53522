"""README's figures come from sample_tasks/<task>/figures.json (bench/figures.py), never typed, and a
small deterministic TREC slice still gives the figures recorded in sample_tasks/trec/figures_ci.json."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_figures", ROOT / "bench" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


def test_readme_blocks_are_rendered_from_the_figures_files():
    problems = figures.readme_problems((ROOT / "README.md").read_text())
    assert not problems, "\n".join(problems)


def test_every_sample_task_has_a_readme_block_and_a_block_without_a_file_stays_empty(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    for name in figures.TASKS:
        assert f"<!-- figures:{name} -->" in readme and f"<!-- /figures:{name} -->" in readme
    monkeypatch.setattr(figures, "SAMPLES", tmp_path)  # no figures file for any task
    empty = "<!-- figures:trec -->\n<!-- /figures:trec -->\n"
    assert figures.readme_problems(empty) == []
    typed = "<!-- figures:trec -->\n| prompt | 0.303 |\n<!-- /figures:trec -->\n"
    assert "typed by hand?" in figures.readme_problems(typed)[0]


def _figs(**row_changes) -> dict:
    row = {"name": "prompt", "metric": "accuracy", "value": 0.5, "ci_low": 0.35, "ci_high": 0.65,
           "state": "fails", "option_ranking": None, "wording": "short", "n_eval": 40,
           "computed_predictions": 40, **row_changes}
    return {"task": "t", "folder": "trec", "limit": 40, "slice": True,
            "target": {"metric": "accuracy", "threshold": 0.8}, "levers": [row],
            "recommendation": {"lever": None, "reason": "No lever meets the target."},
            "git": {"commit": "0123456789abcdef", "dirty": False}, "wall_s": 12.0,
            "date": "2026-01-01T00:00:00Z", "command": "advise run x", "argv": ["advise", "run", "x"]}


def test_a_limited_run_says_so_and_a_missing_ranking_reads_as_a_dash():
    block = figures.render_block(_figs())
    assert "Limited run (the first 40 eval items only)" in block
    assert "| prompt | 0.500 (0.350–0.650) | fails | — | short |" in block
    ranked = figures.render_block(_figs(option_ranking={"method": "calibrated_prefix", "natural": "calibrated",
                                                        "why": "switched", "held_out": None}))
    assert "calibrated_prefix (switched from calibrated)" in ranked


def test_the_slice_check_tolerates_two_items_and_names_what_moved():
    recorded = _figs()
    assert figures.compare_slice(recorded, _figs(value=0.55)) == []  # 2 items of 40
    moved = figures.compare_slice(recorded, _figs(value=0.575))  # 3 items
    assert moved == ["prompt: accuracy recorded 0.5, new 0.575, tolerance ±0.050 (2 items of 40)"]
    assert figures.compare_slice(recorded, _figs(state="undecided")) == [
        "prompt: state recorded fails, new undecided"]
    switched = _figs(option_ranking={"method": "calibrated_prefix", "why": "switched"})
    assert "label ranking recorded None" in figures.compare_slice(recorded, switched)[0]


def test_a_limited_run_never_overwrites_full_figures(tmp_path, monkeypatch):
    (tmp_path / "trec").mkdir()
    full = copy.deepcopy(_figs(limit=None))
    full["limit"] = None
    (tmp_path / "trec" / "figures.json").write_text(json.dumps(full))
    monkeypatch.setattr(figures, "SAMPLES", tmp_path)
    with pytest.raises(SystemExit, match="holds a full run"):
        figures.main(["--task", "trec", "--limit", "3"])


@pytest.mark.slow
def test_the_trec_slice_gives_the_recorded_figures(tmp_path):
    """Reruns the slice (bench/figures.py --slice) in a fresh run folder and model cache (no stored answer,
    no trained adapter). A failure names the lever and what moved; if the change is intended, run
    `make figures-ci` and commit sample_tasks/trec/figures_ci.json."""
    new = figures.run_slice(runs=tmp_path)
    recorded = json.loads(figures.SLICE_FILE.read_text())
    problems = figures.compare_slice(recorded, new)
    assert not problems, ("the TREC slice moved against sample_tasks/trec/figures_ci.json (intended? "
                          "`make figures-ci` and commit the file):\n" + "\n".join(problems))
