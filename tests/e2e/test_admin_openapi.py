"""The admin API's OpenAPI document (issue 11, item 7) against a real `sluicegate run`: schemathesis generates
requests from the live `/admin/v1/openapi.json` (with the bearer token) for every operation, valid and invalid ones,
and checks that no answer is a 5xx and every answer is documented: its status, its content type, its headers and
its body's schema. Bounded: a fixed number of examples per operation, a fixed seed, a guard timeout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tests.e2e.ops_helpers import ADMIN_TOKEN, routes_yaml, run_gateway

ROUTES = routes_yaml(
    {"id": "static-r", "uri": "http://127.0.0.1:9", "predicates": ["Path=/r/**"], "filters": ["StripPrefix=1"]}
)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES = 40  # per operation and generation mode
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz_operation(operation: Any, mode: GenerationMode, base_url: str, session: requests.Session) -> list[str]:
    """The failures (at most three, each with its curl command) of one operation's cases in one mode."""
    found: list[str] = []

    @seed(20261207)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a bounded run
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=10)
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup, requests.RequestException) as exc:  # a Failure is an AssertionError
            if len(found) < 3:
                found.append(f"{operation.label} ({mode.value}): {exc}\n  {case.as_curl_command(AUTH)}")

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (no parameters, no body): there are no negative cases.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return found


def fuzz(base_url: str) -> list[str]:
    """Every operation of the live document, positive and negative cases: the failures."""
    schema = schemathesis.openapi.from_url(base_url + "/admin/v1/openapi.json", headers=AUTH, timeout=10)
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the document loads
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += fuzz_operation(result.ok(), mode, base_url, session)
    return failures


@pytest.mark.timeout(900)
async def test_every_answer_is_documented_and_none_is_a_server_error(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, ROUTES) as gw:
        failures = await asyncio.wait_for(asyncio.to_thread(fuzz, gw.admin_url("")), 840)
        assert not failures, "\n\n".join(failures)
        assert "Traceback" not in gw.stderr()
