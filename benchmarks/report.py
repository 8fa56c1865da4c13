"""Writing a run out: JSON (every sample, every summary), a Markdown report and the PNG chart."""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
from pathlib import Path

from benchmarks.chart import render
from benchmarks.measure import FOREIGN_LIMIT
from benchmarks.nginx import LARGE_BODY_BYTES, SMALL_BODY
from benchmarks.scenarios import Scenario
from benchmarks.stats import Spread
from benchmarks.summary import ModeSummary, Results

MODES = ("closed", "fixed")


def _target_json(r: Results, scenario: Scenario) -> dict[str, object]:
    entry: dict[str, object] = {"scenario": {**dataclasses.asdict(scenario), "path": scenario.path}}
    for mode in MODES:
        summary = r.summary(scenario.name, mode)
        entry[mode] = dataclasses.asdict(summary) if summary else None
    entry["ratios"] = {
        f"{mode}_{what}_vs_{kind}": r.ratio(scenario, mode, kind, what)
        for mode in MODES
        for what, kind in (("rps", "direct"), ("rps", "nginx"), ("cpu", "nginx"))
    }
    entry["metrics_live"] = r.metrics_live.get(scenario.name)
    return entry


def to_json(r: Results) -> dict[str, object]:
    """The whole run as plain data: settings, machine, per-target summaries and ratios, squeezes, every sample."""
    ran = {s.target for s in r.samples}
    squeezes = [
        {
            "target": q.target,
            "knee": q.knee,
            "stopped_by": q.stopped_by,
            "steps": [dataclasses.asdict(s) for s, _ in q.steps],
        }
        for q in r.squeezes
    ]
    return {
        "machine": r.machine,
        "settings": {
            **r.settings,
            "fixed_rate": r.fixed_rate,
            "pinning": dataclasses.asdict(r.pinning),
            "gateway_flags": dataclasses.asdict(r.flags),
        },
        "targets": {s.name: _target_json(r, s) for s in r.scenarios if s.name in ran},
        "squeeze": squeezes,
        "skipped": r.skipped,
        "notes": r.notes,
        "elapsed_s": round(r.elapsed_s, 1),
        "samples": [dataclasses.asdict(s) for s in r.samples],
    }


def _num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _spread(s: Spread | None, scale: float = 1.0, digits: int = 0) -> str:
    if s is None:
        return "–"
    if s.n == 1:
        return _num(s.median / scale, digits)
    return f"{_num(s.median / scale, digits)} ({_num(s.low / scale, digits)}–{_num(s.high / scale, digits)})"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _header(r: Results, name: str, command: str) -> list[str]:
    m = r.machine
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# Sluicegate benchmark: {name}",
        "",
        f"`{command}`, {when}, {r.elapsed_s:.0f} s end to end.",
        "",
        f"**Machine:** {m.get('cpu')}, {m.get('cpus_online')} CPUs, {m.get('memory_gib')} GiB; Linux {m.get('kernel')};"
        f" Python {m.get('python')}, uvloop {m.get('uvloop')}, httptools {m.get('httptools')}; nginx {m.get('nginx')};"
        f" {m.get('wrk')}; sluicegate {m.get('sluicegate')} at {m.get('commit')}.",
        "",
        f"**Setup:** loopback only. Upstream: nginx, 1 worker, a {len(SMALL_BODY)}-byte body from memory"
        f" ({LARGE_BODY_BYTES // 1024} KiB file for the -64k rows). Proxies: nginx (1 worker, keep-alive pool of 64 to"
        " the upstream) and the gateway (`python -m gateway run --log-level INFO`"
        f"{' --workers 1' if r.flags.workers else ''}{' --admin-listen …' if r.flags.admin_listen else ''}),"
        " each writing its access log to a file (the gateway's stdout is redirected there, never a terminal)."
        f" Pinning (`taskset`): {r.pinning.describe()}.",
        "",
        "CPU µs/req is user+system time of the proxy's whole process tree (from /proc) per completed request: the"
        " figure that decides. Cells show the median over repetitions, with the range (min–max) in brackets.",
    ]


def _closed_table(r: Results) -> list[str]:
    s = r.settings
    rows = [
        "",
        f"## Closed loop: wrk -t1 -c{s['connections']}, {s['closed_loop_seconds']:g} s × {s['repetitions']}",
        "",
        "| target | req/s | ×direct | ×nginx | p50 ms | p99 ms | p99.9 ms | CPU µs/req | CPU ×nginx | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc in r.scenarios:
        m = r.summary(sc.name, "closed")
        if m is not None:
            rows.append(
                f"| {sc.name} | {_spread(m.rps)} | {_ratio(r.ratio(sc, 'closed', 'direct', 'rps'))}"
                f" | {_ratio(r.ratio(sc, 'closed', 'nginx', 'rps'))} | {_spread(m.p50_us, 1000, 2)}"
                f" | {_spread(m.p99_us, 1000, 2)} | {_spread(m.p999_us, 1000, 2)} | {_spread(m.proxy_cpu_us, 1, 1)}"
                f" | {_ratio(r.ratio(sc, 'closed', 'nginx', 'cpu'))} | {_rss(m)} |"
            )
    return rows


def _rss(m: ModeSummary) -> str:
    return "–" if m.rss_mib is None else f"{m.rss_mib:.0f}"


def _fixed_table(r: Results) -> list[str]:
    s = r.settings
    if r.fixed_rate is None:
        return []
    rows = [
        "",
        f"## Fixed rate: {_num(r.fixed_rate)} req/s offered (open loop, latency from when each request was due),"
        f" {s['fixed_rate_seconds']:g} s × {s['repetitions']}",
        "",
        "| target | achieved req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | CPU ×nginx | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sc in r.scenarios:
        m = r.summary(sc.name, "fixed")
        if m is not None:
            rows.append(
                f"| {sc.name} | {_spread(m.rps)} | {_spread(m.p50_us, 1000, 2)} | {_spread(m.p99_us, 1000, 2)}"
                f" | {_spread(m.p999_us, 1000, 2)} | {_spread(m.proxy_cpu_us, 1, 1)}"
                f" | {_ratio(r.ratio(sc, 'fixed', 'nginx', 'cpu'))} | {m.errors} |"
            )
    return rows


def _routes_table(r: Results) -> list[str]:
    bare = [s for s in r.scenarios if s.kind == "gateway" and not s.filters and s.body == "small"]
    counted = [(s, r.summary(s.name, "closed"), r.summary(s.name, "fixed")) for s in bare]
    counted = [c for c in counted if c[1] is not None]
    if len(counted) < 2:
        return []
    base = counted[0][1].proxy_cpu_us if counted[0][1] else None
    rows = [
        "",
        "## Cost by number of routes (the benchmarked route last in the file, found through the index)",
        "",
        "| routes | CPU µs/req closed | vs 1 route | req/s closed | CPU µs/req fixed | p99 ms fixed | RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for sc, closed, fixed in counted:
        assert closed is not None
        delta = closed.proxy_cpu_us.median - base.median if closed.proxy_cpu_us and base else None
        change = "–" if delta is None else f"{delta:+.1f} µs"
        rows.append(
            f"| {_num(sc.routes)} | {_spread(closed.proxy_cpu_us, 1, 1)} | {change}"
            f" | {_spread(closed.rps)} | {_spread(fixed.proxy_cpu_us if fixed else None, 1, 1)}"
            f" | {_spread(fixed.p99_us if fixed else None, 1000, 2)} | {_rss(closed)} |"
        )
    return rows


def _squeeze_tables(r: Results) -> list[str]:
    rows: list[str] = []
    for q in r.squeezes:
        knee = "none (the first step failed)" if q.knee is None else f"{_num(q.knee)} req/s"
        rows += ["", f"## Squeeze: {q.target}: knee at {knee}; stopped by {q.stopped_by}", ""]
        rows += ["| offered | achieved | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | verdict |"]
        rows += ["|---|---|---|---|---|---|---|---|"]
        for sample, verdict in q.steps:
            x = sample.load
            cpu = "–" if sample.proxy_cpu_us is None else f"{sample.proxy_cpu_us:.1f}"
            rows.append(
                f"| {_num(x.offered or 0)} | {_num(x.rps)} | {x.p50_us / 1000:.2f} | {x.p99_us / 1000:.2f}"
                f" | {x.p999_us / 1000:.2f} | {x.errors} | {cpu} | {verdict} |"
            )
    return rows


def _notes(r: Results) -> list[str]:
    notes = list(r.notes)
    if r.samples:
        worst = max(r.samples, key=lambda s: s.foreign)
        notes.append(
            f"Other processes took at most {100 * worst.foreign:.1f}% of the CPUs during a kept run ({worst.target},"
            f" {worst.mode} #{worst.rep + 1}); runs above {100 * FOREIGN_LIMIT:.0f}% were repeated up to"
            f" {r.settings.get('repeats_when_disturbed', 0)} times."
        )
    upstream = [s.upstream_cpu_us for s in r.samples if s.mode == "closed"]
    if upstream:
        notes.append(f"The upstream nginx spent {statistics.median(upstream):.1f} µs of CPU per request (median).")
    logs = {s.target: r.summary(s.target, "closed") for s in r.samples if s.log_bytes_per_request}
    notes += [
        f"{t}: {m.log_bytes_per_request:.0f} access-log bytes per request."
        for t, m in logs.items()
        if m and m.log_bytes_per_request
    ]
    notes += [
        f"{t}: /metrics on the admin listener {'answered' if ok else 'did NOT answer'}."
        for t, ok in r.metrics_live.items()
        if ok is not None
    ]
    notes += [f"Skipped {name}: {why}" for name, why in r.skipped.items()]
    return ["", "## Notes", "", *[f"- {n}" for n in notes]] if notes else []


def markdown(r: Results, name: str, command: str) -> str:
    """The report a person reads; every figure is also in the JSON."""
    parts = [_header(r, name, command), _closed_table(r), _fixed_table(r), _routes_table(r), _squeeze_tables(r)]
    parts += [_notes(r), ["", f"![chart]({name}.png)"]]
    return "\n".join(line for part in parts for line in part) + "\n"


def write(r: Results, directory: Path, name: str, command: str) -> list[Path]:
    """Write NAME.json, NAME.md and NAME.png into `directory`; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.{ext}" for ext in ("json", "md", "png")]
    paths[0].write_text(json.dumps(to_json(r), indent=1) + "\n")
    paths[1].write_text(markdown(r, name, command))
    paths[2].write_bytes(render(r))
    return paths
