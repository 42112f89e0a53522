"""Rebuild the US-address JSON-extraction task from the `usaddress` 0.5.16 sdist.

    python sample_tasks/addresses/build.py       # pip download --no-binary usaddress
    python sample_tasks/addresses/build.py --archive usaddress-0.5.16.tar.gz

Reads `training/labeled.xml` (hand-tagged address strings), keeps street
addresses, maps the usaddress tags onto six fixed keys (see README.md), drops
duplicate inputs, and writes data/train.jsonl and data/eval.jsonl (200 held
out, seed 0). Re-running gives byte-identical files.
"""

from __future__ import annotations

import collections
import json
import random
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import buildkit  # noqa: E402
from buildkit import key, read_member, write_jsonl  # noqa: E402

PACKAGE, VERSION = "usaddress", "0.5.16"
MEMBER = "training/labeled.xml"
EVAL_SIZE = 200
SEED = 0
HERE = Path(__file__).resolve().parent

KEYS = ["address_number", "street", "unit", "city", "state", "zip"]
FIELD_OF_TAG = {
    "AddressNumberPrefix": "address_number",
    "AddressNumber": "address_number",
    "AddressNumberSuffix": "address_number",
    "StreetNamePreModifier": "street",
    "StreetNamePreDirectional": "street",
    "StreetNamePreType": "street",
    "StreetName": "street",
    "StreetNamePostType": "street",
    "StreetNamePostDirectional": "street",
    "StreetNamePostModifier": "street",
    "SubaddressType": "unit",
    "SubaddressIdentifier": "unit",
    "OccupancyType": "unit",
    "OccupancyIdentifier": "unit",
    "PlaceName": "city",
    "StateName": "state",
    "ZipCode": "zip",
    "ZipPlus4": "zip",  # joined to ZipCode with "-"
}
# In the input text, not extracted: the fixed schema has no field for them.
IGNORED_TAGS = {"Recipient", "BuildingName", "CountryName"}
# A record with any of these is not a single street address: dropped.
DROP_REASONS = [  # first match names the reason
    ("PO box or rural route (USPSBox*)", {"USPSBoxType", "USPSBoxID", "USPSBoxGroupType", "USPSBoxGroupID"}),
    ("intersection (IntersectionSeparator/CornerOf)", {"IntersectionSeparator", "CornerOf"}),
    ("landmark instead of a street address (LandmarkName)", {"LandmarkName"}),
    ("free text mixed in (NotAddress)", {"NotAddress"}),
]
DROP_TAGS = set().union(*(tags for _, tags in DROP_REASONS))








def dedup_key(text: str) -> str:
    """Stricter key for near-duplicates: also ignores punctuation."""
    return key(re.sub(r"[^\w\s]", " ", text))


def clean(token: str, field: str) -> str:
    """A token as it goes into a field value: trailing separators (, ; -) removed.

    A ZIP code also loses a trailing full stop or quote ("11201." -> "11201").
    """
    token = token.strip().rstrip(",;-").strip()
    if field == "zip":
        token = token.strip('."')
    return token


def convert(record: ET.Element) -> tuple[str, dict | None, str]:
    """(input text, output object or None if dropped, reason)."""
    text = re.sub(r"\s+", " ", "".join(record.itertext())).strip()
    tags = [c.tag for c in record]
    unknown = set(tags) - set(FIELD_OF_TAG) - IGNORED_TAGS - DROP_TAGS
    assert not unknown, unknown
    for reason, drop in DROP_REASONS:
        if drop & set(tags):
            return text, None, reason
    if "AddressNumber" not in tags or "StreetName" not in tags:
        return text, None, "no AddressNumber or no StreetName"
    # Each field's tokens must form one contiguous run (ignored tags may sit between fields):
    # two numbers, or a street split by a unit, means two addresses or a tagging slip.
    runs = [FIELD_OF_TAG[t] for t in tags if t not in IGNORED_TAGS]
    starts = [f for i, f in enumerate(runs) if i == 0 or runs[i - 1] != f]
    if len(starts) != len(set(starts)):
        return text, None, "a field in two places"
    parts: dict[str, list[str]] = collections.defaultdict(list)
    for child in record:
        if child.tag in IGNORED_TAGS:
            continue
        tok = clean(child.text or "", FIELD_OF_TAG[child.tag])
        if child.tag == "ZipPlus4":
            parts["zip"][-1] += "-" + tok
        elif tok:
            parts[FIELD_OF_TAG[child.tag]].append(tok)
    out = {k: (" ".join(parts[k]) if parts.get(k) else None) for k in KEYS}
    return text, out, "kept"




def build(archive: Path) -> dict:
    root = ET.fromstring(read_member(archive, MEMBER))
    records = list(root)
    reasons: collections.Counter = collections.Counter()
    ignored: dict[int, list[str]] = {}
    by_key: dict[str, list[tuple[int, str, dict]]] = collections.defaultdict(list)
    for n, rec in enumerate(records):
        text, out, why = convert(rec)
        reasons[why] += 1
        if out is not None:
            by_key[dedup_key(text)].append((n, text, out))
            ignored[n] = sorted({c.tag for c in rec} & IGNORED_TAGS)
    rows, dup_dropped, conflict_dropped = [], 0, 0
    for group in by_key.values():  # insertion order = first appearance in the file
        # Near-duplicates differ in case or punctuation, so do their values; a conflict is
        # the same address tagged two ways even after that is ignored: keep neither.
        outs = {json.dumps({f: v and dedup_key(v) for f, v in o.items()}) for _, _, o in group}
        if len(outs) > 1:
            conflict_dropped += len(group)
            continue
        n, text, out = group[0]
        dup_dropped += len(group) - 1
        rows.append({"id": f"addr-{n:04d}", "input": text, "output": out})

    rng = random.Random(SEED)
    eval_ids = {r["id"] for r in rng.sample(sorted(rows, key=lambda r: r["id"]), EVAL_SIZE)}
    train = [r for r in rows if r["id"] not in eval_ids]
    eval_ = [r for r in rows if r["id"] in eval_ids]

    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    overlap = {key(r["input"]) for r in train} & {key(r["input"]) for r in eval_}
    near = {dedup_key(r["input"]) for r in train} & {dedup_key(r["input"]) for r in eval_}
    assert not overlap and not near, (overlap, near)
    assert all(list(r["output"]) == KEYS for r in rows)

    out_dir = HERE / "data"
    out_dir.mkdir(exist_ok=True)
    write_jsonl(out_dir / "train.jsonl", train)
    write_jsonl(out_dir / "eval.jsonl", eval_)
    filled = collections.Counter(k for r in rows for k in KEYS if r["output"][k] is not None)
    return {
        "records": len(records),
        "kept_or_dropped": dict(reasons.most_common()),
        "duplicates_dropped (same input up to case/punctuation; first kept)": dup_dropped,
        "conflicting_duplicates_dropped": conflict_dropped,
        "examples": len(rows),
        "train": len(train),
        "eval": len(eval_),
        "non_null_per_key": {k: filled[k] for k in KEYS},
        "with_ignored_text": dict(
            collections.Counter(t for r in rows for t in ignored[int(r["id"].split("-")[1])]).most_common()
        ),
        "eval_with_ignored_text": sum(bool(ignored[int(r["id"].split("-")[1])]) for r in eval_),
        "unique_ids": len(set(ids)) == len(ids),
        "train_eval_overlap": len(overlap),
        "train_eval_near_overlap": len(near),
    }


if __name__ == "__main__":
    buildkit.main(__doc__, build, PACKAGE, VERSION, sdist=True)
