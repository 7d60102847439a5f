"""The kit's records agree with the server's: a queue setting the server defaults to one value must not read as
another in ``QueueInfo`` (the kit keeps its own copy, so that it installs without the server)."""

from __future__ import annotations

import attrs

from starq.server.api import shapes
from starq.server.engine.models import QueueSettings
from starq.worker_kit import QueueInfo


def test_queue_info_settings_default_as_the_server_does():
    server = {field.name: field.default for field in attrs.fields(QueueSettings)}
    kit = {field.name: field.default for field in attrs.fields(QueueInfo)}
    assert set(server) <= set(kit), set(server) - set(kit)
    for name, default in server.items():
        assert kit[name] == default and type(kit[name]) in (type(default), int), (name, kit[name], default)


def test_the_api_documents_the_same_defaults():
    api = {field.name: field.default for field in shapes.CreateQueue.fields if field.name != "name"}
    assert api == {field.name: field.default for field in attrs.fields(QueueSettings)}
