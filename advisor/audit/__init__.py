"""`advise audit`: duplicates, near-duplicates, leakage, label conflicts, likely label errors, balance
and form across train, eval, the few-shot pool and knowledge — before a run spends anything.

    report = audit_task(load_task("sample_tasks/trec/task.yaml"))
    report.find("near-duplicate:train/eval").count   # train items nearly copying an eval input
    report.find("label-error:eval").examples         # eval labels likely wrong (label_errors.py)
    report.suspects                                   # every likely wrong gold answer (review.py writes them)
    report.as_dict()                                  # the `audit` key of results.json
"""

from __future__ import annotations

from dataclasses import replace

from advisor.audit.checks import audit_task, items_for_label_recall
from advisor.audit.report import AuditReport, Finding
from advisor.data import Dataset

__all__ = ["AuditReport", "Finding", "apply_near_duplicate_policy", "audit_task", "items_for_label_recall"]


def apply_near_duplicate_policy(data: Dataset, report: AuditReport, policy: str) -> Dataset:
    """With `policy == "remove"`, drop the train examples that nearly copy an eval input (the same way
    exact copies are dropped) and record their ids in `near_leakage_removed`; otherwise return `data`."""
    if policy != "remove" or not report.near_leak_ids:
        return data
    drop = set(report.near_leak_ids)
    kept = [e for e in data.train if e.id not in drop]
    removed = [e.id for e in data.train if e.id in drop]
    return replace(data, train=kept, near_leakage_removed=removed)
