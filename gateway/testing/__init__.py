"""The test kit for filter and predicate plugins: what a team imports in its own repository to test its filter.

A plugin's tests import `gateway.api` and this module, nothing else from `gateway`:

- `build_filter` / `build_predicate`: a component from its routes.yaml entry, in shortcut (`"TeamTag=payments"`)
  or expanded form (`{"name": "TeamTag", "args": {...}}`), through the same parse and validation path the gateway
  loads routes.yaml with, so a refused config raises `BuildError` with the messages a user would read;
- `make_exchange`: a request as a filter sees it (method, path with query, headers, body, client address);
- `ScriptedUpstream`: the `call_next` standing in for the upstream: records what reached it and answers a scripted
  `Response` or raises a scripted error, one script item per call;
- `check_contract`: the contract every filter and predicate must pass (`CONTRACT` lists it; docs/plugins.md
  explains each rule); the gateway's own suite runs the same function against every installed spec;
- `running_gateway` and `echo_upstream`: a real gateway and a real echo upstream on 127.0.0.1 free ports, for an
  end-to-end test over sockets.

Every async helper is a plain coroutine or async context manager: it runs under pytest-asyncio (any mode) as well
as under `asyncio.run`.
"""

from __future__ import annotations

from gateway.testing._build import BuildError, build_filter, build_predicate
from gateway.testing._contract import CONTRACT, ContractViolation, check_contract, contract_problems
from gateway.testing._exchange import Received, ScriptedUpstream, make_exchange, metric_value, read_body
from gateway.testing._live import EchoUpstream, Reply, RunningGateway, echo_upstream, running_gateway

__all__ = [
    "CONTRACT",
    "BuildError",
    "ContractViolation",
    "EchoUpstream",
    "Received",
    "Reply",
    "RunningGateway",
    "ScriptedUpstream",
    "build_filter",
    "build_predicate",
    "check_contract",
    "contract_problems",
    "echo_upstream",
    "make_exchange",
    "metric_value",
    "read_body",
    "running_gateway",
]
