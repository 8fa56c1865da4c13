"""Upstream pools (`upstreams:` in routes.yaml, `lb://name` routes): balancing, health checks, outlier detection.

Pools are long-lived, per-worker state kept outside the route table (`PoolSet`), keyed by pool name; a reload
keeps a pool whose config did not change and updates a changed one in place.
"""
