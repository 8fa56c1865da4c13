"""Generated routes files: the benchmarked route last in file order, behind N-1 filler routes.

Fillers look like a platform team's table (a service prefix each, some with a Method predicate, a path variable
or a rewrite) and every one has its own literal path prefix, so the route index narrows a request for
`/bench/...` to the benchmarked route alone: the cost measured at 1,000 routes is the index's, not a scan's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

BENCH_ROUTE = "bench"
BENCH_PREFIX = "/bench"


def _filler(index: int, uri: str) -> dict[str, Any]:
    service = f"/api/svc-{index:04d}"
    predicates: list[str] = [f"Path={service}/**"]
    filters: list[str] = ["StripPrefix=2"]
    if index % 3 == 1:
        predicates.append("Method=GET,POST")
    if index % 5 == 2:
        predicates = [f"Path={service}/items/{{id}}"]
        filters = ["SetPath=/items/{id}", f"AddRequestHeader=X-Service, svc-{index:04d}"]
    return {"id": f"svc-{index:04d}", "uri": uri, "predicates": predicates, "filters": filters}


def routes_yaml(upstream: str, filters: Sequence[str] = (), total: int = 1) -> str:
    """A routes file of `total` routes whose last is `bench` (Path=/bench/**, `filters`) proxying to `upstream`."""
    if total < 1:
        raise ValueError("a routes file needs at least the benchmarked route")
    routes = [_filler(i, upstream) for i in range(1, total)]
    bench: dict[str, Any] = {"id": BENCH_ROUTE, "uri": upstream, "predicates": [f"Path={BENCH_PREFIX}/**"]}
    if filters:
        bench["filters"] = list(filters)
    routes.append(bench)
    return yaml.safe_dump({"routes": routes}, sort_keys=False, width=200)
