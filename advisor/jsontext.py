"""The lenient JSON parse of model output, shared by the extraction scorer (advisor.scoring) and the
json_schema check (advisor.checks.schema). A leaf: it imports nothing of advisor.
"""

from __future__ import annotations

import json
import re
from typing import Any


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first complete top-level JSON object in `text`, or None.

    Models wrap JSON in prose or code fences, so prose around the object is skipped. An object
    that never closes (an answer cut off by the token budget) is invalid: its inner objects are
    never taken for the answer.
    """
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1)
    depth, in_str, esc, start = 0, False, False, -1
    for i, ch in enumerate(text):
        if depth == 0:  # in prose: only an opening brace matters (quotes in prose are not JSON strings)
            if ch == "{":
                depth, start = 1, i
            continue
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                try:
                    obj = json.loads(text[start : i + 1])
                except json.JSONDecodeError:
                    continue  # braces in prose, not JSON: look for the next top-level object
                if isinstance(obj, dict):
                    return obj
    return None  # nothing found, or the outermost object is not complete
