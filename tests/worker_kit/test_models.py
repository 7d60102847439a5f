"""The kit's records agree with the server's declarations: every queue setting is a field of ``QueueInfo`` with the
server's default (both read it from ``protocol.QUEUE_SETTINGS``), the API documents the same defaults, and ``Job``
and ``Schedule`` have the fields the server shows; ``Batch`` likewise."""

from __future__ import annotations

import attrs

from starq.server.api import shapes
from starq.worker_kit import Batch, Job, QueueInfo, Schedule
from starq.worker_kit.protocol import QUEUE_DEFAULTS


def test_queue_info_has_every_setting_with_the_server_default():
    kit = {field.name: field.default for field in attrs.fields(QueueInfo)}
    for name, default in QUEUE_DEFAULTS.items():
        assert name in kit, f"QueueInfo lacks the setting {name}"
        assert kit[name] == default and type(kit[name]) is type(default), (name, kit[name], default)


def test_the_api_documents_the_same_defaults():
    api = {field.name: field.default for field in shapes.CreateQueue.fields if field.name != "name"}
    assert api == QUEUE_DEFAULTS


def test_the_kit_job_has_every_field_the_server_shows():
    shown = {field.name for field in shapes.Job.fields} - {"history", "dependents"}  # only on GET of one job
    kit = {field.name for field in attrs.fields(Job)} - {"raw"}
    assert shown == kit


def test_the_kit_schedule_has_every_field_the_server_shows():
    shown = {field.name for field in shapes.Schedule.fields}
    kit = {field.name for field in attrs.fields(Schedule)} - {"raw"}
    assert shown == kit


def test_the_kit_batch_has_every_field_the_server_shows():
    shown = {field.name: field.default for field in shapes.Batch.fields}
    kit = {field.name for field in attrs.fields(Batch)} - {"raw"}
    assert set(shown) == kit
    assert attrs.fields(Batch).callback_job_id.default is shown["callback_job_id"] is None  # null: no callback
