"""The three ways to choose a label through a chat API: the parts that need no server."""

from __future__ import annotations

import math

from advisor.backends.classify_api import (
    distinct_first_tokens,
    map_to_label,
    parse_enum_answer,
    rank_top_logprobs,
)

LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def test_top_logprobs_rank_labels_by_the_tokens_that_start_them():
    top = [("LOC", -0.5), (" H", -1.0), ("HUM", -2.0), ("Type", -3.0), ("", -4.0)]
    label, scores = rank_top_logprobs(top, LABELS)
    assert label == "LOC"
    hum = scores[LABELS.index("HUM")]
    assert hum is not None and math.isclose(hum, math.log(math.exp(-1.0) + math.exp(-2.0)))
    assert scores[LABELS.index("NUM")] is None  # not among the top tokens: unknown, not a made-up floor
    assert rank_top_logprobs([("The", -0.1), ("A", -0.2)], ["Apple", "Avocado"])[0] is None  # "A" starts both


def test_first_tokens_distinct_by_tokenizer_or_first_character():
    assert distinct_first_tokens(LABELS, None)
    assert not distinct_first_tokens(["positive", "pos-neutral", "negative"], None)
    fake_ids = {"spam": [7, 1], "spat": [7, 2], "eggs": [9]}
    assert not distinct_first_tokens(list(fake_ids), lambda s: fake_ids[s])
    assert distinct_first_tokens(["spam", "eggs"], lambda s: fake_ids[s])


def test_mapping_free_text_to_a_label():
    assert map_to_label(" LOC.", LABELS) == "LOC"
    assert map_to_label("hum", LABELS) == "HUM"
    assert map_to_label("New  York", ["new york", "paris"]) == "new york"
    assert map_to_label("The answer is LOC", LABELS) is None  # unmappable: counted, scored wrong


def test_enum_answers_must_be_whole():
    assert parse_enum_answer('"HUM"', "stop", LABELS) == "HUM"
    assert parse_enum_answer('"HUM"', "length", LABELS) == "HUM"  # ran on in trailing whitespace only
    assert parse_enum_answer('"HU', "length", LABELS) is None  # cut short
    assert parse_enum_answer('"XYZ"', "stop", LABELS) is None
