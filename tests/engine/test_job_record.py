"""A job record's values (the Lua library's RECORD order) read as the API's fields, kind by kind."""

from __future__ import annotations

from starq.server.engine.models import JOB_FIELDS, RECORD, Job, iso

# A stored value per kind, and how the API shows it.
STORED = {"text": "x", "int": "7", "int?": "3", "time": "1765000000123", "json": '{"a":1}', "list": '["t"]'}
SHOWN = {"text": "x", "int": 7, "int?": 3, "time": iso(1765000000123), "json": '{"a":1}', "list": '["t"]'}
# How the API shows a field the record lacks (false from the store).
UNSET = {"text": "", "int": 0, "int?": None, "time": "", "json": None, "list": "[]"}


def _values(status: str) -> list[object]:
    return [status if f.stored == "status" else STORED[f.kind] for f in JOB_FIELDS]


def test_a_claimed_record_shows_every_field_read_by_its_kind() -> None:
    job = Job.from_record("q", _values("claimed"))
    assert job.fields == {f.name: "claimed" if f.name == "status" else SHOWN[f.kind] for f in JOB_FIELDS}


def test_fields_shown_only_while_claimed_read_as_unset_otherwise() -> None:
    job = Job.from_record("q", _values("completed"))
    expected = {f.name: UNSET[f.kind] if f.while_claimed else SHOWN[f.kind] for f in JOB_FIELDS}
    assert job.fields == {**expected, "status": "completed"}
    assert any(f.while_claimed for f in JOB_FIELDS)


def test_a_record_lacking_every_field_reads_as_unset() -> None:
    job = Job.from_record("q", [False] * len(RECORD))
    assert job.fields == {f.name: UNSET[f.kind] for f in JOB_FIELDS}
    assert Job.new_json("q", {"id": "i"}) == {**Job("q", job.fields).to_json(), "id": "i"}
