"""The API's routes as issue 2 defines them (the contract the tests hold the code to)."""

from __future__ import annotations

WRITE_ROUTES = [
    ("POST", "/api/v1/queues"),
    ("PATCH", "/api/v1/queues/{name}"),
    ("DELETE", "/api/v1/queues/{name}"),
    ("POST", "/api/v1/queues/{name}/pause"),
    ("POST", "/api/v1/queues/{name}/resume"),
    ("POST", "/api/v1/queues/{name}/retry"),
    ("POST", "/api/v1/queues/{name}/jobs"),
    ("POST", "/api/v1/queues/{name}/jobs/claim"),
    ("POST", "/api/v1/queues/{name}/jobs/ack"),
    ("POST", "/api/v1/queues/{name}/jobs/bulk"),
    ("PUT", "/api/v1/queues/{name}/jobs/{job}/complete"),
    ("PUT", "/api/v1/queues/{name}/jobs/{job}/fail"),
    ("PUT", "/api/v1/queues/{name}/jobs/{job}/extend"),
    ("DELETE", "/api/v1/queues/{name}/jobs/{job}"),
    ("POST", "/api/v1/queues/{name}/jobs/{job}/retry"),
]
READ_ROUTES = [
    ("GET", "/api/v1/queues"),
    ("GET", "/api/v1/queues/{name}"),
    ("GET", "/api/v1/queues/{name}/jobs"),
    ("GET", "/api/v1/queues/{name}/jobs/{job}"),
]
QUEUE_ROUTES = [r for r in WRITE_ROUTES + READ_ROUTES if "{name}" in r[1]]
