"""Rebuild the ISO-country QA task from the `pycountry` package's JSON databases.

    python sample_tasks/countries/build.py        # pip download --no-deps pycountry==26.2.16
    python sample_tasks/countries/build.py --archive pycountry-26.2.16-py3-none-any.whl

Reads `pycountry/databases/iso3166-1.json` and `iso3166-2.json` straight out of
the downloaded archive (pycountry is never imported), writes one knowledge
document per country, template questions split by country (eval countries never
appear in train questions), and a synthetic second knowledge version (v2) with
its eval answers. Re-running gives byte-identical files.
"""

from __future__ import annotations

import collections
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import buildkit  # noqa: E402
from buildkit import key, read_member, write_jsonl  # noqa: E402

PACKAGE, VERSION = "pycountry", "26.2.16"
DB_1 = "databases/iso3166-1.json"
DB_2 = "databases/iso3166-2.json"
SEED = 0
EVAL_COUNTRIES = 60
EVAL_THREE = 30  # eval countries with 3 questions; the others get 2 -> 150 questions
V2_NUMERIC = 10  # eval countries whose numeric code changes in v2
V2_OFFICIAL = 10  # eval countries whose official name changes in v2
EXAMPLE_SUBDIVISIONS = 3
HERE = Path(__file__).resolve().parent

# template name -> (question, which fact answers it)
TEMPLATES = {
    "alpha_2": "What is the ISO 3166-1 alpha-2 code of {name}?",
    "alpha_3": "What is the ISO 3166-1 alpha-3 code of {name}?",
    "numeric": "What is the ISO 3166-1 numeric code of {name}?",
    "subdivisions": "How many subdivisions does ISO 3166-2 list for {name}?",
    "official_name": "What is the official name of {name}?",
}










def facts_of(country: dict, subdivisions: list[dict]) -> dict:
    subs = sorted(subdivisions, key=lambda s: s["code"])
    types = collections.Counter(s["type"] for s in subs)
    return {
        "alpha_2": country["alpha_2"],
        "alpha_3": country["alpha_3"],
        "numeric": country["numeric"],
        "name": country.get("common_name", country["name"]),
        "iso_name": country["name"],
        "official_name": country.get("official_name"),
        "subdivisions": str(len(subs)),
        "subdivision_types": sorted(types.items(), key=lambda kv: (-kv[1], kv[0])),
        "subdivision_examples": [(s["name"], s["code"]) for s in subs[:EXAMPLE_SUBDIVISIONS]],
    }


def document(f: dict) -> dict:
    name = f["name"]
    parts = [name]
    aka = []
    if f["iso_name"] != name:
        aka.append(f"ISO 3166-1 name: {f['iso_name']}")
    if f["official_name"]:
        aka.append(f"official name: {f['official_name']}")
    text = name + (f" ({'; '.join(aka)})" if aka else "") + "."
    parts = [
        text,
        f"ISO 3166-1 alpha-2 code: {f['alpha_2']}; alpha-3 code: {f['alpha_3']}; "
        f"numeric code: {f['numeric']}.",
    ]
    n = int(f["subdivisions"])
    if n == 0:
        parts.append(f"ISO 3166-2 lists 0 subdivisions for {name}.")
    else:
        types = ", ".join(f"{t} ({c})" for t, c in f["subdivision_types"])
        examples = ", ".join(f"{s} ({c})" for s, c in f["subdivision_examples"])
        parts.append(
            f"ISO 3166-2 lists {n} subdivision{'s' if n != 1 else ''} for {name}, "
            f"by type: {types}. First by code: {examples}."
        )
    return {
        "id": f"country-{f['alpha_2'].lower()}",
        "text": " ".join(parts),
        "metadata": {
            "alpha_2": f["alpha_2"],
            "alpha_3": f["alpha_3"],
            "numeric": f["numeric"],
            "name": name,
            "source": f"{PACKAGE} {VERSION} iso3166-1.json, iso3166-2.json",
        },
    }


def question(f: dict, template: str) -> dict:
    return {
        "id": f"{f['alpha_2'].lower()}-{template.replace('_', '-')}",
        "input": TEMPLATES[template].format(name=f["name"]),
        "output": f[template],
        "sources": [f"country-{f['alpha_2'].lower()}"],
        "country": f["alpha_2"],
        "template": template,
    }


def templates_for(f: dict) -> list[str]:
    return [t for t in TEMPLATES if f[t] is not None]


def build(archive: Path) -> dict:
    countries = json.loads(read_member(archive, DB_1))["3166-1"]
    subdivisions = json.loads(read_member(archive, DB_2))["3166-2"]
    subs_of = collections.defaultdict(list)
    for s in subdivisions:
        subs_of[s["code"].split("-", 1)[0]].append(s)
    facts = {
        c["alpha_2"]: facts_of(c, subs_of[c["alpha_2"]])
        for c in sorted(countries, key=lambda c: c["alpha_2"])
    }
    codes = sorted(facts)
    assert len({f["name"] for f in facts.values()}) == len(facts), "two countries share a name"

    rng = random.Random(SEED)
    eval_codes = sorted(rng.sample(codes, EVAL_COUNTRIES))
    train_codes = [c for c in codes if c not in set(eval_codes)]

    # v2 (synthetic): new numeric codes and new official names for some eval countries.
    with_official = [c for c in eval_codes if facts[c]["official_name"]]
    v2_official = sorted(rng.sample(with_official, V2_OFFICIAL))
    v2_numeric = sorted(rng.sample([c for c in eval_codes if c not in v2_official], V2_NUMERIC))
    used = {f["numeric"] for f in facts.values()}
    free = [f"{n:03d}" for n in range(1, 900) if f"{n:03d}" not in used]
    new_numeric = dict(zip(v2_numeric, rng.sample(free, V2_NUMERIC)))
    facts_v2 = {c: dict(f) for c, f in facts.items()}
    for c, num in new_numeric.items():
        facts_v2[c]["numeric"] = num
    for c in v2_official:
        old = facts[c]["official_name"]
        facts_v2[c]["official_name"] = (
            f"Federal Republic of {facts[c]['name']}"
            if not old.startswith("Federal ")
            else f"United Republic of {facts[c]['name']}"
        )

    # Eval: 2 or 3 questions per eval country; a changed fact is always asked about.
    three = set(rng.sample(eval_codes, EVAL_THREE))
    eval_, eval_v2 = [], []
    for c in eval_codes:
        forced = ["numeric"] if c in new_numeric else ["official_name"] if c in v2_official else []
        others = [t for t in templates_for(facts[c]) if t not in forced]
        picked = forced + rng.sample(others, (3 if c in three else 2) - len(forced))
        for t in [t for t in TEMPLATES if t in picked]:  # template order, not draw order
            q = question(facts[c], t)
            eval_.append(q)
            q2 = question(facts_v2[c], t)
            q2["changed_in_v2"] = q2["output"] != q["output"]
            eval_v2.append(q2)
    train = [question(facts[c], t) for c in train_codes for t in templates_for(facts[c])]

    knowledge = [document(facts[c]) for c in codes]
    knowledge_v2 = [document(facts_v2[c]) for c in codes]

    # Checks.
    for rows in (train, eval_, eval_v2, knowledge, knowledge_v2):
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), "duplicate ids"
    overlap = {key(r["input"]) for r in train} & {key(r["input"]) for r in eval_}
    entity_overlap = {r["country"] for r in train} & {r["country"] for r in eval_}
    assert not overlap and not entity_overlap
    doc_ids = {d["id"] for d in knowledge}
    assert all(s in doc_ids for r in train + eval_ for s in r["sources"])
    for rows, docs in ((eval_, knowledge), (eval_v2, knowledge_v2)):  # answer is in its doc
        text = {d["id"]: d["text"] for d in docs}
        assert all(r["output"] in text[r["sources"][0]] for r in rows)
    changed = sum(r["changed_in_v2"] for r in eval_v2)
    assert changed == V2_NUMERIC + V2_OFFICIAL
    changed_docs = sum(a != b for a, b in zip(knowledge, knowledge_v2))

    out = HERE / "data"
    out.mkdir(exist_ok=True)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "eval.jsonl", eval_)
    write_jsonl(out / "knowledge.jsonl", knowledge)
    write_jsonl(out / "knowledge_v2.jsonl", knowledge_v2)
    write_jsonl(out / "eval_v2.jsonl", eval_v2)
    return {
        "countries": len(codes),
        "countries_without_subdivisions": sum(f["subdivisions"] == "0" for f in facts.values()),
        "countries_with_official_name": sum(bool(f["official_name"]) for f in facts.values()),
        "train_countries": len(train_codes),
        "eval_countries": len(eval_codes),
        "train": len(train),
        "eval": len(eval_),
        "knowledge": len(knowledge),
        "knowledge_v2": len(knowledge_v2),
        "eval_v2": len(eval_v2),
        "train_by_template": dict(collections.Counter(r["template"] for r in train)),
        "eval_by_template": dict(collections.Counter(r["template"] for r in eval_)),
        "v2_numeric_changed": {c: f"{facts[c]['numeric']}->{n}" for c, n in new_numeric.items()},
        "v2_official_name_changed": v2_official,
        "v2_changed_docs": changed_docs,
        "eval_v2_changed_answers": changed,
        "unique_ids": True,
        "train_eval_overlap": len(overlap),
        "train_eval_country_overlap": len(entity_overlap),
    }


if __name__ == "__main__":
    buildkit.main(__doc__, build, PACKAGE, VERSION)
