"""A stored run as plain data for the reports: results.json plus the per-item answers in advise.sqlite.

`load_run(run_dir)` reads the run folder (no model, no task data); `build_document(run)` turns it
into sections of paragraphs, tables and charts (`advisor.report.blocks`) that the HTML and markdown
renderers print as they are, so both carry the same text and numbers.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.record import RunRecord, load_record, results_path
from advisor.report.blocks import Document, Heading, Paragraph, Section, Table
from advisor.report.fmt import cut, show_value

# Per kind, the per-item metric that says whether an item failed when the target metric has no
# per-item score (macro-F1 is a set-level figure).
ITEM_METRIC = {"classification": "accuracy", "extraction": "exact_match", "generation": "exact_match",
               "qa": "exact_match"}
FAILURES_SHOWN = 10


# -- the stored run ---------------------------------------------------------------------------------


@dataclass
class LeverItems:
    """One lever's answers in the run: failures (score below 1 on `metric`) and how many items."""

    metric: str
    n_items: int
    failures: list[dict[str, Any]]  # position, example_id, source, input, gold, output, raw (eval order)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # example id -> its row, every item
    reasons: dict[str, dict[str, str]] = field(default_factory=dict)  # example id -> check -> why it failed


@dataclass
class StoredRun:
    """A finished run as its readers see it: the record, and the per-item rows of the store's run that
    wrote it (`scores`: row -> metric -> example id -> score; `groups`: example id -> eval group)."""

    record: RunRecord
    run_dir: Path
    items: dict[str, LeverItems] | None  # lever row name -> items; None when the store has none
    items_missing: str | None = None  # why there are no per-item answers, in words
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    run_id: int | None = None

    @property
    def results(self) -> dict[str, Any]:
        """The record as plain JSON (the formatters' input)."""
        return self.record.to_json()


def load_run(run_dir: Path) -> StoredRun:
    """The one reader of a run folder: `results.json` (advisor.record.load_record, which validates and
    upgrades it) and, when present, the per-item answers and scores of the store's run that wrote it:
    the run results.json names (`run_id`), never "the latest run" (see `_store_run_id`).

    Raises InputError (exit code 2) as `advisor.record.load_record` does, and for a store that cannot be
    read. The store is opened read-only: reading a run never changes a run folder's data, and a run
    folder on a read-only disk reads as any other.
    """
    record = load_record(run_dir)
    folder = results_path(run_dir).parent
    results = record.to_json()
    items, why, scores, run_id = _load_items(folder / "advise.sqlite", results)
    return StoredRun(record, folder, items, why, scores, run_id)


def _store_run_id(db: sqlite3.Connection, results: dict[str, Any]) -> tuple[int | None, str | None]:
    """(the store's run that wrote these results, None) or (None, why it cannot be told).

    A results.json that names its run (`run_id`) gets that run, provided the store's copy of it is the
    same run (same id recorded, same creation time); a store that does not hold it was replaced or
    belongs to another folder. A file from before runs recorded their id gets the one finished run
    created at the same second, else the task's only finished run; never the latest of several (two runs
    into one folder finishing in the same second made reports mix a 40-item record with 20-item rows).
    """
    created = (results.get("provenance") or {}).get("created")
    rows = db.execute("SELECT id, task, results FROM runs WHERE status='done' ORDER BY id").fetchall()
    stored = {int(i): (task, json.loads(text) if text else {}) for i, task, text in rows}
    wanted = results.get("run_id")
    if wanted is not None:
        if wanted not in stored:
            return None, (f"the store holds no finished run {wanted}, the run this results.json records "
                          "(was advise.sqlite replaced or copied from elsewhere?)")
        copy = stored[wanted][1]
        copy_created = (copy.get("provenance") or {}).get("created")
        if copy.get("run_id", wanted) != wanted or (created and copy_created and copy_created != created):
            return None, (f"the store's run {wanted} is not the run that wrote this results.json (was advise.sqlite "
                          "replaced or copied from elsewhere?)")
        return wanted, None
    old = "this results.json, written before runs recorded their id, does not say which one wrote it"
    same_time = [i for i, (_, copy) in stored.items()
                 if created and (copy.get("provenance") or {}).get("created") == created]
    if len(same_time) == 1:
        return same_time[0], None
    if same_time:
        return None, f"{len(same_time)} finished runs in the store were created at {created}, and {old}"
    of_task = [i for i, (task, _) in stored.items() if task == results["task"]]
    if len(of_task) == 1:
        return of_task[0], None
    if of_task:
        return None, f"the store holds {len(of_task)} finished runs of this task, and {old}"
    return None, "the store holds no finished run of this task"


def _load_items(db_path: Path, results: dict[str, Any]
                ) -> tuple[dict[str, LeverItems] | None, str | None, dict[str, dict[str, dict[str, float]]], int | None]:
    """(items per row, why there are none, scores: row -> metric -> example id -> score, the store's run id)."""
    if not db_path.is_file():
        return None, "this run folder has no advise.sqlite, so per-item answers cannot be shown", {}, None
    from advisor.store import RunStore

    # Read-only: a reader never migrates or writes a store (it may belong to a running job).
    try:
        store = RunStore.read_only(db_path)
    except sqlite3.DatabaseError as e:
        raise InputError(f"unreadable run store: {e}", file=db_path) from None
    try:
        run_id, why = _store_run_id(store.db, results)
        if run_id is None:
            return None, why, {}, None
        scores = {lv["name"]: store.item_scores(run_id, lv["name"]) for lv in results["levers"]}
        if "run_items" not in store.tables():
            return None, ("this run was stored before reports kept per-item answers; run `advise run` "
                          "again (every answer is cached, so it takes seconds) to list failures"), scores, run_id
        kind = results["kind"]
        target = results["target"]["metric"]
        out: dict[str, LeverItems] = {}
        for lever in results["levers"]:
            name = lever["name"]
            rows = store.run_items(run_id, name)
            if not rows:
                continue
            metric = target if target in scores[name] else ITEM_METRIC.get(kind, "exact_match")
            per_item = scores[name].get(metric, {})
            failed = [r for r in rows if per_item.get(r["example_id"], 1.0) < 1.0]
            out[name] = LeverItems(metric, len(rows), failed, {r["example_id"]: r for r in rows},
                                   store.item_reasons(run_id, name))
        return out, None, scores, run_id
    except sqlite3.DatabaseError as e:
        raise InputError(f"unreadable run store: {e}", file=db_path) from None
    finally:
        store.close()


def sample_failures(task: str, lever: str, failures: list[dict[str, Any]], k: int = FAILURES_SHOWN
                    ) -> list[dict[str, Any]]:
    """At most `k` failures, the same ones every time: the k smallest SHA-256 hashes of
    (task, lever, example id, position), shown in eval order. A hash spreads the sample over
    the whole eval set instead of taking its first items, which are often alike."""
    def key(r: dict[str, Any]) -> str:
        return hashlib.sha256(f"{task}\x1f{lever}\x1f{r['example_id']}\x1f{r['position']}".encode()).hexdigest()

    chosen = sorted(failures, key=key)[:k]
    return sorted(chosen, key=lambda r: r["position"])


# -- the report ------------------------------------------------------------------------------------


def failures_section(r: dict[str, Any], run: StoredRun) -> Section:
    if run.items is None:
        return Section("failures", "Failures", [Paragraph(f"No failures to show: {run.items_missing}.", "note")])
    blocks: list[Any] = [Paragraph(
        f"For each lever, up to {FAILURES_SHOWN} eval items it got wrong, chosen by a hash of the item (the same "
        f"items every time this run is rendered), in eval order. Long texts are cut at {300} characters.", "note")]
    for lv in r["levers"]:
        items = run.items.get(lv["name"])
        blocks.append(Heading(lv["name"]))
        if items is None:
            blocks.append(Paragraph("No per-item answers stored for this lever.", "note"))
            continue
        shown = sample_failures(r["task"], lv["name"], items.failures)
        blocks.append(Paragraph(f"{len(items.failures)} of {items.n_items} items scored below 1 on "
                                f"{items.metric}; {len(shown)} shown.", "note"))
        if shown:
            blocks.append(Table(["item", "input", "gold", "output"],
                                [[f"{f['example_id']} ({f['source']})", cut(f["input"]), cut(show_value(f["gold"])),
                                  cut(f["raw"] if f["raw"].strip() else show_value(f["output"]))] for f in shown],
                                row_styles=["failure"] * len(shown)))
    return Section("failures", "Failures, a sample per lever", blocks)


def build_document(run: StoredRun) -> Document:
    """The whole report as sections, in reading order."""
    # Sections draw charts (matplotlib): imported here, so reading a stored run stays light.
    from advisor.report.checks_view import checks_section
    from advisor.report.judge_view import judge_section
    from advisor.report.levers import levers_section
    from advisor.report.sections import (
        cost_quality_section,
        data_section,
        provenance_section,
        ranking_section,
        scorecard_section,
        task_section,
        verdict_section,
        volume_section,
    )

    r = run.results
    rec = r["verdict"]
    verdict = {"recommend": rec.get("lever"), "undecided": "undecided, more eval items needed",
               "none": "no lever meets the target"}[rec["outcome"]]
    sections = [
        task_section(r),
        verdict_section(r),
        scorecard_section(r),
        *([checks] if (checks := checks_section(r, run)) else []),
        *([judged] if (judged := judge_section(r)) else []),
        *([ranking] if (ranking := ranking_section(r)) else []),
        cost_quality_section(r),
        volume_section(r),
        levers_section(r),
        failures_section(r, run),
        data_section(r),
        provenance_section(r),
    ]
    return Document(f"{r['task']}: which lever to use", f"Recommendation: {verdict}", sections)
