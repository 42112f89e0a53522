"""The run record: typed, versioned, one loader; version 1 files upgrade, damaged ones are one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from advisor.cli import main
from advisor.errors import InputError
from advisor.record import SCHEMA_VERSION, load_record, parse_record, results_schema

V1 = Path(__file__).parent / "fixtures" / "results" / "v1_trec.json"  # TREC's results.json before the record


def test_a_version_1_file_loads_with_its_states_bounds_and_items_kept():
    old = json.loads(V1.read_text())
    record = load_record(V1)
    assert record.schema_version == SCHEMA_VERSION
    assert record.target.rule == old["recommendation"]["rule"] and record.target.margin == 0.0
    for new, lv in zip(record.levers, old["levers"]):
        assert new.verdict.state == lv["state"] and new.verdict.lower_bound == lv["lower_bound"]
        assert new.verdict.more_items_needed == lv["items_needed"]
        assert new.verdict.no_better_than_baseline == lv["no_better_than_baseline"]
        assert new.family == lv["family"] and new.artifact.identity == lv["artifact"]["identity"]
    # v1 had no outcome: no lever and an undecided row is "undecided".
    assert record.verdict.outcome == "undecided" and record.verdict.lever is None
    assert [c.p_value for c in record.verdict.comparisons] == [c["mcnemar_p"] for c in old["recommendation"]
                                                             ["comparisons"]]
    # The upgraded record is valid against the published schema, and round-trips.
    jsonschema.validate(record.to_json(), results_schema())
    assert parse_record(record.to_json()) == record


@pytest.mark.parametrize("damage,field", [
    (lambda d: d["levers"][0].pop("metrics"), "levers.0.metrics"),
    (lambda d: d["levers"][0]["verdict"].update(state="maybe"), "levers.0.verdict.state"),
    (lambda d: d.update(surprise=1), "surprise"),
    (lambda d: d["verdict"].update(outcome="recommend-ish"), "verdict.outcome"),
])
def test_a_damaged_file_is_one_line_naming_the_field(tmp_path, damage, field):
    data = load_record(V1).to_json()
    damage(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as e:
        load_record(path)
    assert field in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)
    shown = CliRunner().invoke(main, ["show", str(tmp_path)])
    assert shown.exit_code == 2 and field in shown.output and "Traceback" not in shown.output


def test_an_unknown_version_is_refused(tmp_path):
    data = load_record(V1).to_json()
    data["schema_version"] = 3
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="schema_version 3 is not one this advise reads.*upgrade advise"):
        load_record(tmp_path)
    data["schema_version"] = "2"  # a damaged file, not a newer one: no advice to upgrade
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="must be a whole number, got '2'") as e:
        load_record(tmp_path)
    assert "upgrade" not in str(e.value)


def test_advise_schema_results_prints_the_record_schema_that_validates_a_record():
    out = CliRunner().invoke(main, ["schema", "--results"])
    assert out.exit_code == 0
    schema = json.loads(out.output)
    assert schema == results_schema() and "verdict" in schema["required"]
    record = load_record(V1).to_json()
    jsonschema.validate(record, schema)
    record["levers"][0]["verdict"]["state"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, schema)


def test_every_reader_reads_a_version_1_run_folder(tmp_path):
    """show, report and the document loader go through load_record: a v1 folder renders."""
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(V1, folder / "results.json")
    shown = CliRunner().invoke(main, ["show", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert "Recommendation: undecided, more eval items needed" in shown.output
    made = CliRunner().invoke(main, ["report", str(folder), "--format", "md"])
    assert made.exit_code == 0, made.output
    text = (folder / "report.md").read_text()
    assert "undecided" in text and "lora" in text
