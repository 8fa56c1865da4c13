"""Sluicegate's benchmark suite: `python -m benchmarks [--quick] [--squeeze]` (see benchmarks/README.md).

Direct to an nginx upstream, through nginx as the reference proxy, and through the gateway (bare route, a typical
filter chain, 100 and 1,000 routes), side by side on loopback, with processes pinned to CPUs. Results go to
benchmarks/results/ as JSON, Markdown and PNG.
"""
