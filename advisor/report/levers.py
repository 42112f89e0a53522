"""The report's per-lever section: what each lever measured in detail (its failures, read from the
store, are `advisor.report.document.failures_section`)."""

from __future__ import annotations

from typing import Any

from advisor.report.blocks import Bullets, Heading, Paragraph, Section, Table
from advisor.report.fmt import cut, interval, num, prompt_form_note, show_value

# Keys of `details` rendered by a dedicated table; any other scalar detail is listed as it is.
_KNOWN_DETAILS = {"per_label", "confusion", "per_field", "prompt_variants", "search"}
_PATHS = {
    "first_token_logprobs": "the first answer token's log-probabilities",
    "json_schema_enum": "a JSON-schema enum constraining the answer",
    "generate_and_map": "generated text mapped onto the labels",
    "option_loglik": "each label's log-likelihood",
}


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if not isinstance(v, (dict, list))) or "defaults"


def _lever_blocks(r: dict[str, Any], lv: dict[str, Any]) -> list[Any]:
    details = lv.get("details") or {}
    blocks: list[Any] = [Heading(lv["name"])]
    facts = [f"rung {lv.get('rung', '–')}"]
    if lv.get("family"):
        facts.append(f"family {lv['family']}")
    if lv.get("model"):
        facts.append(f"model {lv['model']}")
    facts.append(f"options: {_options(lv.get('options') or {})}")
    if isinstance(lv.get("computed_predictions"), int):
        facts.append(f"{lv['computed_predictions']} of {lv.get('n_eval', '–')} answers computed in this run (the rest came from the store)")
    blocks.append(Paragraph("; ".join(facts) + ".", "note"))
    notes = []
    if lv.get("classification_path"):
        path = lv["classification_path"]
        notes.append(f"Labels chosen by {_PATHS.get(path, path)} ({path}).")
    if lv.get("unmappable"):
        notes.append(f"{lv['unmappable']} answer(s) could not be mapped onto a label.")
    off = lv.get("off_label")
    if isinstance(off, dict):
        mass = (f"; mean probability on label tokens {off['label_mass']:.2f}"
                if off.get("label_mass") is not None else "")
        notes.append(f"Off-label: the model's own answer was not a label on {off.get('items')} of "
                     f"{lv.get('n_eval', '–')} items ({100 * float(off.get('share') or 0):.0f}%){mass}.")
        notes += [f"Warning: {off[k]}." for k in ("warning", "approximate") if off.get(k)]
    choice = lv.get("classification_choice")
    if isinstance(choice, dict) and choice.get("reason"):
        notes.append(f"Classification path: {choice['reason']}.")
    form = prompt_form_note(lv)  # a LoRA row: the prompt it was trained on and answers with, and why
    if form:
        notes.append(f"Prompt form: {form}.")
    curation = ((lv.get("artifact") or {}).get("info") or {}).get("curation")
    if isinstance(curation, dict) and curation.get("summary"):  # lora-curated: what cleaning dropped and cost
        notes.append(f"Cleaned data: {curation['summary']}.")
    if details.get("truncated"):
        notes.append(f"{details['truncated']} item(s) were truncated to fit the model's context.")
    for n in notes:
        blocks.append(Paragraph(n, "warn" if "truncated" in n or "mapped" in n or n.startswith("Warning")
                                else "note"))

    metrics = lv.get("metrics") or {}
    blocks.append(Table(["metric", f"value ({round(100 * (lv.get('confidence') or 0.95))}% interval)"],
                        [[k, interval(v)] for k, v in sorted(metrics.items())], numeric=[False, True]))
    confusion = details.get("confusion")
    if isinstance(confusion, dict) and confusion.get("matrix"):
        cols = [str(c) for c in confusion.get("columns") or []]
        blocks.append(Table(["gold \\ predicted", *cols],
                            [[str(lab), *[str(x) for x in row]] for lab, row in
                             zip(confusion.get("labels") or [], confusion["matrix"])],
                            caption="Confusion matrix: rows are gold labels, columns the predicted ones.",
                            numeric=[False, *[True] * len(cols)]))
    per_label = details.get("per_label")
    if isinstance(per_label, dict) and per_label:
        blocks.append(Table(["label", "precision", "recall", "F1", "support"],
                            [[str(k), num(v.get("precision")), num(v.get("recall")), num(v.get("f1")),
                              str(v.get("support", "–"))] for k, v in per_label.items()],
                            numeric=[False, True, True, True, True]))
    per_field = details.get("per_field")
    if isinstance(per_field, dict) and per_field:
        blocks.append(Table(["field", "precision", "recall", "F1"],
                            [[str(k), num(v.get("precision")), num(v.get("recall")), num(v.get("f1"))]
                             for k, v in per_field.items()],
                            caption="Per-field precision, recall and F1 over all eval items.",
                            numeric=[False, True, True, True]))
    variants = details.get("prompt_variants")
    if isinstance(variants, list) and variants:
        blocks.append(Table(["prompt variant", "dev score", "chosen"],
                            [[str(v.get("name")), num(v.get("dev_score")), "yes" if v.get("chosen") else ""]
                             for v in variants], numeric=[False, True, False]))
    search = details.get("search")
    if isinstance(search, dict):
        blocks.append(Paragraph(
            f"Prompt search: {search.get('candidates', '–')} candidates scored on {search.get('dev_items', '–')} "
            f"dev items (never eval); chosen dev score {num(search.get('dev_score'))}, eval score "
            f"{num(search.get('eval_score'))}, dev–eval gap {num(search.get('dev_eval_gap'))}; search took "
            f"{num(search.get('setup_seconds'), 0)} s.", "note"))
        if isinstance(search.get("chosen"), dict):
            blocks.append(Bullets([f"{k}: {cut(show_value(v), 200)}" for k, v in sorted(search["chosen"].items())]))
    extra = [f"{k}: {v}" for k, v in sorted(details.items())
             if k not in _KNOWN_DETAILS and k != "truncated" and isinstance(v, (str, int, float, bool))]
    if extra:
        blocks.append(Bullets(extra))
    curve = (r.get("learning_curves") or {}).get(lv["name"])
    if isinstance(curve, dict) and curve.get("points"):
        blocks.append(Table(["fraction of train", "examples", str(curve.get("metric")), "train s"],
                            [[num(p.get("fraction"), 2), str(p.get("n_train")), num(p.get("metric")),
                              num(p.get("train_seconds"), 0)] for p in curve["points"]],
                            caption=f"Learning curve (target {num(curve.get('threshold'), 2)}).",
                            numeric=[True, True, True, True]))
        if curve.get("message"):
            blocks.append(Paragraph(f"What the curve says: {curve['message']}."))
    return blocks


def levers_section(r: dict[str, Any]) -> Section:
    blocks: list[Any] = []
    for lv in r["levers"]:
        blocks += _lever_blocks(r, lv)
    return Section("levers", "Each lever in detail", blocks)
