"""The admin API's OpenAPI document (issue 11, item 7) against a real `sluicegate run`: schemathesis generates
requests from the live `/admin/v1/openapi.json` (with the bearer token) for every operation, valid and invalid ones,
and checks that no answer is a 5xx and every answer is documented: its status, its content type, its headers and
its body's schema. Bounded: a fixed number of examples per operation, a fixed seed, a guard timeout.
"""

from __future__ import annotations

import asyncio
from collections import Counter
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

from tests.e2e.ops_helpers import ADMIN_TOKEN, run_gateway

# Every part a view shows: default filters (globalfilters, combinedfilters), a pool, both component forms, metadata.
ROUTES = """
upstreams:
  backend:
    instances: [{url: 'http://127.0.0.1:9'}]
default-filters:
  - {name: AddRequestHeader, args: {name: X-Default, value: d}}
routes:
  - id: static-r
    uri: lb://backend
    order: 5
    predicates: ["Path=/r/**", {name: Method, args: {methods: [GET, POST]}}]
    filters: [StripPrefix=1, {name: SetStatus, args: {status: 201}}]
    metadata: {connect-timeout: 500, owner: team-a, tags: [a, b]}
"""
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES = 40  # per operation and generation mode
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Fuzz:
    """What a run saw: failures (at most three per operation and mode, each with its curl command), and the
    statuses each operation answered with."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.failures: list[str] = []
        self.statuses: Counter[tuple[str, int]] = Counter()


def fuzz_operation(operation: Any, mode: GenerationMode, fuzz: Fuzz) -> None:
    """One operation's cases in one mode."""
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
            response = case.call(base_url=fuzz.base_url, session=fuzz.session, headers=AUTH, timeout=10)
            fuzz.statuses[operation.label, response.status_code] += 1
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup, requests.RequestException) as exc:  # a Failure is an AssertionError
            if len(found) < 3:
                found.append(f"{operation.label} ({mode.value}): {exc}\n  {case.as_curl_command(AUTH)}")

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (no parameters, no body): there are no negative cases.
        assert mode is GenerationMode.NEGATIVE, operation.label
    fuzz.failures += found


def run_fuzz(base_url: str) -> Fuzz:
    """Every operation of the live document, positive and negative cases."""
    schema = schemathesis.openapi.from_url(base_url + "/admin/v1/openapi.json", headers=AUTH, timeout=10)
    fuzz = Fuzz(base_url)
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the document loads
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(result.ok(), mode, fuzz)
    return fuzz


@pytest.mark.timeout(900)
async def test_every_answer_is_documented_and_none_is_a_server_error(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, ROUTES) as gw:
        fuzz = await asyncio.wait_for(asyncio.to_thread(run_fuzz, gw.admin_url("")), 840)
        assert not fuzz.failures, "\n\n".join(fuzz.failures)
        assert "Traceback" not in gw.stderr()
    # The run reached past the refusals: generated routes were applied, validated and rolled back to.
    applied = {label for (label, status), _ in fuzz.statuses.items() if 200 <= status < 300}
    assert {
        "PUT /admin/v1/routes/{id}",
        "POST /actuator/gateway/routes/{id}",
        "POST /admin/v1/validate",
        "POST /admin/v1/rollback/{n}",
    } <= applied, fuzz.statuses
