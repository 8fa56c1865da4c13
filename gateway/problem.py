"""RFC 9457 problem+json responses: the only way the gateway answers a request itself with an error."""

from __future__ import annotations

import orjson

from gateway.errors import GatewayError
from gateway.headers import Headers

PROBLEM_TYPE_BASE = "https://sluicegate.dev/problems/"


def problem_response_parts(error: GatewayError, instance: str = "") -> tuple[int, Headers, bytes]:
    """(status, headers, body) for `error`. The detail is ours, never an upstream's or a filter's traceback."""
    document = {
        "type": PROBLEM_TYPE_BASE + error.kind,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        document["instance"] = instance
    headers = Headers([("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")])
    for name, value in error.headers:
        headers.add(name, value)
    return error.status, headers, orjson.dumps(document)
