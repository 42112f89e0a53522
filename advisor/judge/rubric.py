"""A rubric in task.yaml: named yes/no criteria a judge model grades every output against.

    rubric:
      judge: openai:qwen2.5-7b-instruct      # any `openai:` model, or a mapping {model:, base_url:, ...}
      mode: per_criterion                     # per_criterion: one call per criterion; joint: one JSON answer
      max_new_tokens: 32                      # the judge's budget per answer
      samples: 1                              # grades per output; k > 1 needs temperature > 0
      temperature: 0                          # the judge's sampling temperature
      in_pass_all: false                      # true: pass_all also needs every criterion (unscored: unscored)
      criteria:
        - name: owns_problem
          question: Does the reply say sorry and own the customer's problem?
          pass: names the problem in a few words and says it is on us
          fail: apologises vaguely, blames the customer, or quotes a policy

Each criterion is a per-item metric like a check's: 1.0 pass, 0.0 fail, and *unscored* where the
judge's answer could not be read (not JSON, not one of pass/fail, cut off, refused). An unscored
grade is never a pass nor a fail: it is left out of that criterion's rate and counted beside it
(`advisor.judge.grading`). The judge's prompt is hashed (`prompt_hash`) and the hash recorded on every
grade, so a changed rubric is a new grade, never a stale one read back.

Which mode agrees better with people is an empirical question per task: grade the same outputs in
both modes, label a sample by hand (`advise label`), and compare each mode's kappa
(`advisor.judge.agreement`) on the same labelled items.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advisor.modelspec import ModelEntry, OpenAISettings
from advisor.origin import SettingError

NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"
PASS, FAIL = "pass", "fail"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Criterion(_Strict):
    """One yes/no question with what a pass and a fail look like (anchors the judge's answer)."""

    name: str = Field(pattern=NAME, description="The per-item pass/fail metric this criterion adds.")
    question: str = Field(min_length=1, description="A yes/no question about one output.")
    pass_: str = Field(alias="pass", min_length=1, description="What an output that passes looks like.")
    fail: str = Field(min_length=1, description="What an output that fails looks like.")


class Rubric(_Strict):
    """task.yaml's `rubric:` (module docstring)."""

    judge: str | ModelEntry = Field(description="The judge: 'openai:<model>' or a mapping with its settings.")
    mode: Literal["per_criterion", "joint"] = Field(
        "per_criterion", description="per_criterion: one request per criterion; joint: one JSON answer "
        "with every criterion per output.")
    max_new_tokens: int = Field(48, ge=4, le=1024, description="The judge's generation budget per answer.")
    min_kappa: float = Field(0.6, ge=-1, le=1, description="Agreement with people at which a criterion's "
                             "judge grades are trusted (advisor.judge.agreement).")
    temperature: float = Field(0.0, ge=0, le=2, description="The judge's sampling temperature: 0 (the default) "
                               "with samples 1; above 0 with samples > 1.")
    samples: int = Field(1, ge=1, le=20, description="Grades per output: k > 1 grades each output k times at "
                         "`temperature`; the item's grade is the majority (a tie is unscored), and the items whose "
                         "grade flips across samples are counted.")
    in_pass_all: bool = Field(False, description="Whether pass_all also needs every criterion passed: an item "
                              "with an unscored criterion is then unscored for pass_all (default: pass_all is "
                              "over the checks only).")
    criteria: list[Criterion] = Field(min_length=1, description="The criteria, each a per-item metric.")

    @field_validator("samples")
    @classmethod
    def _noise(cls, v: int, info: Any) -> int:
        t = info.data.get("temperature", 0.0)
        if v > 1 and not t:
            raise ValueError(f"samples {v} needs rubric.temperature above 0 (e.g. 0.7): at 0 the judge gives the "
                             "same grade every time and the samples would show no noise")
        return v

    @field_validator("judge")
    @classmethod
    def _openai(cls, v: str | ModelEntry) -> str | ModelEntry:
        spec = v if isinstance(v, str) else v.model
        # Said here rather than by check_scheme, whose message offers `hf:`, which a judge cannot be.
        if not spec.startswith("openai:") or not spec.split(":", 1)[1].strip():
            raise ValueError(f"the judge '{spec}' must be an 'openai:' model, e.g. openai:gpt-4o-mini (any "
                             "OpenAI-compatible server)")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Rubric:
        seen: dict[str, int] = {}
        for i, c in enumerate(self.criteria):
            if c.name in seen:  # reported at the repeated criterion's `name:` line
                raise SettingError(("criteria", i, "name"), f"criterion name '{c.name}' is already the name of "
                                   f"criteria[{seen[c.name]}]; give each criterion its own name")
            seen[c.name] = i
        return self

    @property
    def judge_spec(self) -> str:
        return self.judge if isinstance(self.judge, str) else self.judge.model

    def judge_settings(self, base: OpenAISettings | None) -> OpenAISettings:
        """The judge's server settings: its own mapping over the task's `openai:` section."""
        own = {} if isinstance(self.judge, str) else self.judge.model_dump(exclude_unset=True, exclude={"model"})
        return OpenAISettings.model_validate({**(base.model_dump(exclude_unset=True) if base else {}), **own})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.criteria]


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (as advisor.data.stable_hash, which imports the task model)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


SYSTEM = ("You are a strict grader. You read one output written for an input and answer whether it meets "
          "a criterion. Answer only with the JSON asked for.")


def criterion_text(c: Criterion) -> str:
    return f"{c.name}: {c.question}\n  pass: {c.pass_}\n  fail: {c.fail}"


def judge_messages(rubric: Rubric, criteria: list[Criterion], input_text: str, output: str) -> list[dict[str, str]]:
    """The chat the judge sees for one output and `criteria` (one in per_criterion mode, all in joint)."""
    crit = "\n".join(criterion_text(c) for c in criteria)
    keys = ", ".join(f'"{c.name}"' for c in criteria)
    user = (f"Input:\n{input_text}\n\nOutput:\n{output}\n\nCriteria:\n{crit}\n\n"
            f'Answer with a JSON object whose keys are {keys}, each "pass" or "fail".')
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def answer_schema(criteria: list[Criterion]) -> dict[str, Any]:
    """The JSON schema the judge's answer is constrained to (response_format json_schema)."""
    return {"type": "object", "properties": {c.name: {"type": "string", "enum": [PASS, FAIL]} for c in criteria},
            "required": [c.name for c in criteria], "additionalProperties": False}


def prompt_hash(rubric: Rubric, criterion: Criterion) -> str:
    """Hash of everything that shapes one criterion's grade but the graded text: the prompt template
    (system message, criteria wording, mode and the criteria graded together), the schema and budget."""
    together = [criterion] if rubric.mode == "per_criterion" else rubric.criteria
    return stable_hash({"system": SYSTEM, "mode": rubric.mode, "criteria": [criterion_text(c) for c in together],
                        "schema": answer_schema(together), "max_new_tokens": rubric.max_new_tokens,
                        "template": judge_messages(rubric, together, "{input}", "{output}")})


def parse_grades(text: str, criteria: list[Criterion]) -> dict[str, float | None]:
    """criterion -> 1.0 pass, 0.0 fail, None unscored (the answer is not a JSON object, the criterion
    is missing from it, or its value is neither "pass" nor "fail")."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        obj = None
    out: dict[str, float | None] = {}
    for c in criteria:
        v = obj.get(c.name) if isinstance(obj, dict) else None
        v = v.strip().lower() if isinstance(v, str) else v
        out[c.name] = 1.0 if v in (PASS, True) else 0.0 if v in (FAIL, False) else None
    return out


def same_family(judge: str, model: str) -> bool:
    """Whether a judge's model looks like the graded model or its family (a judge favours its own)."""
    def fam(spec: str) -> str:
        name = spec.split(":", 1)[-1].lower().split("/")[-1]
        for sep in ("-", "_", ".", ":"):
            name = name.split(sep)[0]
        return "".join(ch for ch in name if ch.isalpha())

    return judge.split(":", 1)[-1].lower() == model.split(":", 1)[-1].lower() or fam(judge) == fam(model)


__all__ = ["Criterion", "Rubric", "answer_schema", "judge_messages", "parse_grades", "prompt_hash", "same_family"]
