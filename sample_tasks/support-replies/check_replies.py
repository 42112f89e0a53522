"""Check the written replies (data/train.jsonl `output`) against the task's own `checks:`.

    python sample_tasks/support-replies/check_replies.py             # train.jsonl outputs
    python sample_tasks/support-replies/check_replies.py FILE.jsonl  # any JSONL with `output`

A stand-alone mirror of the checks' rules as task.yaml states them, so that the written examples
can be checked before (and apart from) advise: words are whitespace-separated tokens
(`str.split()`); phrases are compared case-folded via `advisor.textnorm.canonical_text`, patterns
searched with `re.search` in the text as written; tone is VADER's compound score (vaderSentiment);
language is py3langid's most likely language. Prints each check's pass rate and every failure, and
also the word-count range. Exit status 1 if any reply fails a check.

Needs vaderSentiment and py3langid (`pip install vaderSentiment py3langid`) and PyYAML.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from advisor.textnorm import canonical_text  # noqa: E402


def run_check(check: dict, text: str, vader, langid) -> list[str]:
    kind, why = check["kind"], []
    if kind == "length":
        n = len(text.split())
        if "min_words" in check and n < check["min_words"]:
            why.append(f"{n} words < {check['min_words']}")
        if "max_words" in check and n > check["max_words"]:
            why.append(f"{n} words > {check['max_words']}")
    elif kind == "phrases":
        folded = canonical_text(text)
        why += [f"missing {p!r}" for p in check.get("required", []) if canonical_text(p) not in folded]
        why += [f"forbidden {p!r}" for p in check.get("forbidden", []) if canonical_text(p) in folded]
        why += [f"pattern {p!r} not found" for p in check.get("required_patterns", []) if not re.search(p, text)]
        why += [f"forbidden pattern {p!r}" for p in check.get("forbidden_patterns", []) if re.search(p, text)]
    elif kind == "tone":
        s = vader.polarity_scores(text)
        if "min_compound" in check and s["compound"] < check["min_compound"]:
            why.append(f"compound {s['compound']} < {check['min_compound']}")
        if "max_negative" in check and s["neg"] > check["max_negative"]:
            why.append(f"neg {s['neg']} > {check['max_negative']}")
    elif kind == "language":
        lang, p = langid.classify(text)
        if lang != check["language"]:
            why.append(f"language {lang} (p={p:.2f})")
    else:
        raise SystemExit(f"no mirror for check kind {kind!r}")
    return why


def main() -> int:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    task = yaml.safe_load((HERE / "task.yaml").read_text(encoding="utf-8"))
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "data" / "train.jsonl"
    rows = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    vader = SentimentIntensityAnalyzer()
    langid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    checks = task["checks"]
    failed_any = set()
    for check in checks:
        name = check.get("name", check["kind"])
        fails = [(r["id"], why) for r in rows if (why := run_check(check, r["output"], vader, langid))]
        failed_any |= {i for i, _ in fails}
        print(f"{name}: {len(rows) - len(fails)}/{len(rows)} pass")
        for i, why in fails:
            print(f"  {i}: {'; '.join(why)}")
    print(f"pass_all: {len(rows) - len(failed_any)}/{len(rows)} pass")
    counts = sorted(len(r["output"].split()) for r in rows)
    compounds = sorted(vader.polarity_scores(r["output"])["compound"] for r in rows)
    print(f"words: min {counts[0]}, median {counts[len(counts) // 2]}, max {counts[-1]}; "
          f"VADER compound: min {compounds[0]}, median {compounds[len(compounds) // 2]}")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
