"""``bench/results.json`` in the shape docs/performance.md describes, and the table ``make bench`` prints.

Pure: measurements in, a dict and text out. The targets are reported next to each number and never
asserted; ``check_shape`` only checks that the document has every key of the contract and of the
pod-start and storm blocks added to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOAD_KEYS = ("per_s", "baseline_per_s", "ratio", "p99_ms")
WEBHOOK_KEYS = ("per_s", "baseline_per_s", "ratio", "p50_ms", "p99_ms")
CLI_KEYS = ("fetch_s", "python_pass_s", "ratio")
TOP_KEYS = ("webhook", "federation", "cli", "jwks_fetches_per_10k", "store_reads_per_burst_100", "machine")
FEDERATION_STORES = ("fake", "openbao")
STORM_KEYS = ("pods", "spread_s", "errors", "pods_per_s", "p50_s", "p99_s", "store_reads_per_key_max")
# The storms make bench runs: esi-federation serve's defaults, and a default chart install's.
STORMS = ("serve_defaults", "chart_defaults")
# Names of the servers in ``Measurements.pod_start`` and ``server_cpu_ms_per_request``.
SERVERS = ("webhook", "webhook_baseline", "federation_fake", "federation_openbao", "federation_baseline")
STORM_MAX_READS_PER_KEY = 5
STORM_MAX_P99_S = 2.0


@dataclass(frozen=True)
class Throughput:
    """One load run summed up: successful requests per second and latency percentiles."""

    per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int
    cpu_ms_per_request: float = 0.0


@dataclass(frozen=True)
class Measurements:
    """Everything one ``make bench`` run measured."""

    webhook: Throughput
    webhook_baseline: Throughput
    federation_fake: Throughput
    federation_openbao: Throughput
    federation_baseline: Throughput
    cli_fetch_s: float
    python_pass_s: float
    jwks_fetches_per_10k: float
    store_reads_per_burst_100: int
    machine: str
    federation_workers: int
    # The same servers, every request on a new TLS connection (``SERVERS`` name them).
    pod_start: Mapping[str, Throughput]
    # Server CPU of one TLS handshake without a request, by server (``SERVERS``).
    handshake_cpu_ms: Mapping[str, float]
    # Each storm's block (``STORMS`` name them; see bench/storm.py).
    storms: Mapping[str, Mapping[str, Any]]
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A target of the issue: where its number is in the results and whether the number meets it."""

    label: str
    path: tuple[str, ...]
    wording: str
    met: Callable[[float], bool]


def targets(federation_workers: int) -> tuple[Target, ...]:
    """The targets (reported, not asserted); the store-read one depends on the worker count."""
    return (
        Target("webhook vs bare Flask", ("webhook", "ratio"), ">= 0.8x", lambda r: r >= 0.8),
        Target("federation (fake) vs bare", ("federation", "fake", "ratio"), ">= 0.6x", lambda r: r >= 0.6),
        Target(
            "webhook vs bare Flask (pod-start)",
            ("pod_start", "webhook", "ratio"),
            ">= 0.8x",
            lambda r: r >= 0.8,
        ),
        Target(
            "federation (fake) vs bare (pod-start)",
            ("pod_start", "federation", "fake", "ratio"),
            ">= 0.6x",
            lambda r: r >= 0.6,
        ),
        Target("esi-cli fetch vs python -c pass", ("cli", "ratio"), "<= 6x", lambda r: r <= 6.0),
        Target(
            "JWKS fetches per 10k requests",
            ("jwks_fetches_per_10k",),
            "<= 1 per federation per refresh interval",
            lambda n: n <= 1,
        ),
        Target(
            "store reads, burst of 100",
            ("store_reads_per_burst_100",),
            f"<= {federation_workers} (workers)",
            lambda n: n <= federation_workers,
        ),
        *(target for storm in STORMS for target in _storm_targets(storm)),
    )


def _storm_targets(storm: str) -> tuple[Target, ...]:
    return (
        Target(f"storm {storm}: errors", ("storm", storm, "errors"), "0", lambda n: n == 0),
        Target(
            f"storm {storm}: store reads per key",
            ("storm", storm, "store_reads_per_key_max"),
            f"<= {STORM_MAX_READS_PER_KEY}",
            lambda n: n <= STORM_MAX_READS_PER_KEY,
        ),
        Target(
            f"storm {storm}: p99 start to files written",
            ("storm", storm, "p99_s"),
            f"< {STORM_MAX_P99_S:g} s",
            lambda s: s < STORM_MAX_P99_S,
        ),
    )


def build_results(m: Measurements) -> dict[str, Any]:
    """The results document: the contract keys first, then the added blocks and extras (targets, details)."""
    results: dict[str, Any] = {
        "webhook": {
            **_compared(m.webhook, m.webhook_baseline),
            "p50_ms": round(m.webhook.p50_ms, 2),
        },
        "federation": {
            "fake": _compared(m.federation_fake, m.federation_baseline),
            "openbao": _compared(m.federation_openbao, m.federation_baseline),
        },
        "cli": {
            "fetch_s": round(m.cli_fetch_s, 4),
            "python_pass_s": round(m.python_pass_s, 4),
            "ratio": _ratio(m.cli_fetch_s, m.python_pass_s),
        },
        "jwks_fetches_per_10k": m.jwks_fetches_per_10k,
        "store_reads_per_burst_100": m.store_reads_per_burst_100,
        "machine": m.machine,
    }
    # Key order of the contract: p50 before p99 in the webhook block.
    results["webhook"] = {key: results["webhook"][key] for key in (*WEBHOOK_KEYS, "cpu_ratio", "details")}
    fresh = m.pod_start
    results["pod_start"] = {
        "webhook": _compared(fresh["webhook"], fresh["webhook_baseline"]),
        "federation": {
            "fake": _compared(fresh["federation_fake"], fresh["federation_baseline"]),
            "openbao": _compared(fresh["federation_openbao"], fresh["federation_baseline"]),
        },
    }
    keep_alive = {
        "webhook": m.webhook,
        "webhook_baseline": m.webhook_baseline,
        "federation_fake": m.federation_fake,
        "federation_openbao": m.federation_openbao,
        "federation_baseline": m.federation_baseline,
    }
    results["server_cpu_ms_per_request"] = {
        name: _cpu_split(keep_alive[name], fresh[name], m.handshake_cpu_ms[name]) for name in SERVERS
    }
    results["storm"] = {name: dict(block) for name, block in m.storms.items()}
    results["targets"] = {target.label: _judge(results, target) for target in targets(m.federation_workers)}
    results.update(m.extras)
    return results


def check_shape(results: Mapping[str, Any]) -> list[str]:
    """Every way ``results`` differs from its documented shape (missing keys, non-numbers); empty if none."""
    problems = [f"missing {key}" for key in TOP_KEYS if key not in results]
    problems += _missing_numbers(results.get("webhook"), WEBHOOK_KEYS, "webhook")
    federation = results.get("federation")
    for store in FEDERATION_STORES:
        block = federation.get(store) if isinstance(federation, Mapping) else None
        problems += _missing_numbers(block, LOAD_KEYS, f"federation.{store}")
    problems += _missing_numbers(results.get("cli"), CLI_KEYS, "cli")
    pod_start = results.get("pod_start")
    if not isinstance(pod_start, Mapping):
        problems.append("missing pod_start")
    else:
        problems += _missing_numbers(pod_start.get("webhook"), WEBHOOK_KEYS, "pod_start.webhook")
        federation = pod_start.get("federation")
        for store in FEDERATION_STORES:
            block = federation.get(store) if isinstance(federation, Mapping) else None
            problems += _missing_numbers(block, LOAD_KEYS, f"pod_start.federation.{store}")
    storms = results.get("storm")
    for storm in STORMS:
        block = storms.get(storm) if isinstance(storms, Mapping) else None
        problems += _missing_numbers(block, STORM_KEYS, f"storm.{storm}")
    for key in ("jwks_fetches_per_10k", "store_reads_per_burst_100"):
        if key in results and not _is_number(results[key]):
            problems.append(f"{key} is not a number")
    if "machine" in results and not isinstance(results["machine"], str):
        problems.append("machine is not a string")
    return problems


def write_results(results: Mapping[str, Any], path: Path) -> None:
    """Write ``results`` as indented JSON (with a final newline)."""
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def format_table(results: Mapping[str, Any]) -> str:
    """A readable table of ``results``: each number next to its baseline, ratio and target."""
    web, fed, cli = results["webhook"], results["federation"], results["cli"]
    rows = [
        ("benchmark", "measured", "baseline", "ratio", "cpu ratio", "p50 ms", "p99 ms", "target"),
        _load_row("webhook /mutate (reviews/s)", web, ">= 0.8x"),
        _load_row("federation /v1/secrets, fake", fed["fake"], ">= 0.6x"),
        _load_row("federation /v1/secrets, OpenBao", fed["openbao"], "-"),
        _load_row("pod-start: webhook /mutate", results["pod_start"]["webhook"], ">= 0.8x"),
        _load_row("pod-start: federation, fake", results["pod_start"]["federation"]["fake"], ">= 0.6x"),
        _load_row("pod-start: federation, OpenBao", results["pod_start"]["federation"]["openbao"], "-"),
        (
            "esi-cli fetch, 3 secrets (s)",
            f"{cli['fetch_s']:.3f}",
            f"{cli['python_pass_s']:.3f}",
            f"{cli['ratio']:.2f}x",
            "",
            "",
            "",
            "<= 6x python -c pass",
        ),
        (
            "JWKS fetches per 10k requests",
            _number(results["jwks_fetches_per_10k"]),
            "",
            "",
            "",
            "",
            "",
            "<= 1",
        ),
        (
            "store reads, burst of 100",
            _number(results["store_reads_per_burst_100"]),
            "",
            "",
            "",
            "",
            "",
            results.get("targets", {}).get("store reads, burst of 100", {}).get("target", "<= workers"),
        ),
    ]
    lines = _columns(rows)
    lines.append("")
    lines += _columns(
        [
            ("server CPU ms per request", "keep-alive", "pod-start", "connection", "handshake only"),
            *(
                (
                    name,
                    *(
                        f"{split[key]:.3f}"
                        for key in ("keep_alive", "pod_start", "connection", "handshake_only")
                    ),
                )
                for name, split in results["server_cpu_ms_per_request"].items()
            ),
        ]
    )
    lines.append("")
    lines += _columns(
        [
            (
                "storm",
                "pods/spread",
                "errors",
                "pods/s",
                "p50 s",
                "p99 s",
                "reads/key",
                "TLS key",
                "handshake ms",
                "esi-cli",
                "esi-cli cpu ms",
            ),
            *(
                (
                    name,
                    f"{block['pods']}/{block['spread_s']:g}s",
                    str(block["errors"]),
                    f"{block['pods_per_s']:.1f}",
                    f"{block['p50_s']:.3f}",
                    f"{block['p99_s']:.3f}",
                    str(block["store_reads_per_key_max"]),
                    str(block.get("tls_key", "")),
                    f"{block.get('handshake_cpu_ms', 0.0):.3f}",
                    str(block.get("esi_cli", "venv")),
                    f"{block.get('cli_cpu_ms_per_pod', 0.0):.1f}",
                )
                for name, block in results["storm"].items()
            ),
        ]
    )
    profiles = results.get("profile", {})
    if profiles:
        lines.append("")
        lines.append(
            "in-process CPU ms per request (no gunicorn, no TLS): "
            + ", ".join(f"{name} {block['cpu_ms_per_request']:.3f}" for name, block in profiles.items())
        )
    missed = [label for label, t in results.get("targets", {}).items() if not t["met"]]
    lines.append("")
    lines.append("cpu ratio: the baseline's server CPU time per request over the measured one's")
    lines.append("connection: pod-start minus keep-alive CPU per request (accept, TLS handshake, close)")
    lines.append(f"machine: {results['machine']}")
    lines.append("targets missed: " + (", ".join(missed) if missed else "none"))
    failures = _failures(results)
    if failures:
        lines.append("requests that failed (non-2xx or transport errors): " + ", ".join(failures))
    return "\n".join(line.rstrip() for line in lines)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _cpu_split(keep_alive: Throughput, pod_start: Throughput, handshake_only: float) -> dict[str, float]:
    """Server CPU per request in both patterns; their difference is what a new connection costs."""
    return {
        "keep_alive": round(keep_alive.cpu_ms_per_request, 3),
        "pod_start": round(pod_start.cpu_ms_per_request, 3),
        "connection": round(pod_start.cpu_ms_per_request - keep_alive.cpu_ms_per_request, 3),
        "handshake_only": round(handshake_only, 3),
    }


def _failures(results: Mapping[str, Any]) -> list[str]:
    blocks = {
        "webhook": results["webhook"],
        **{f"federation {k}": v for k, v in results["federation"].items()},
        "pod-start webhook": results["pod_start"]["webhook"],
        **{f"pod-start federation {k}": v for k, v in results["pod_start"]["federation"].items()},
    }
    failures = []
    for name, block in blocks.items():
        details = block.get("details", {})
        if details.get("failed") or details.get("baseline_failed"):
            failures.append(f"{name} {details['failed']}, its baseline {details['baseline_failed']}")
    return failures


def _compared(target: Throughput, baseline: Throughput) -> dict[str, Any]:
    return {
        "per_s": round(target.per_s, 1),
        "baseline_per_s": round(baseline.per_s, 1),
        "ratio": _ratio(target.per_s, baseline.per_s),
        # The same ratio from the servers' CPU time per request: less shaken by other work on the machine.
        "cpu_ratio": _ratio(baseline.cpu_ms_per_request, target.cpu_ms_per_request),
        "p50_ms": round(target.p50_ms, 2),
        "p99_ms": round(target.p99_ms, 2),
        "details": {
            "requests": target.requests,
            "failed": target.failed,
            "baseline_requests": baseline.requests,
            "baseline_failed": baseline.failed,
            "baseline_p50_ms": round(baseline.p50_ms, 2),
            "baseline_p99_ms": round(baseline.p99_ms, 2),
            "server_cpu_ms_per_request": round(target.cpu_ms_per_request, 3),
            "baseline_server_cpu_ms_per_request": round(baseline.cpu_ms_per_request, 3),
        },
    }


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator > 0 else 0.0


def _judge(results: Mapping[str, Any], target: Target) -> dict[str, Any]:
    value = _at(results, target.path)
    return {"target": target.wording, "value": value, "met": target.met(value)}


def _at(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = document
    for key in path:
        node = node[key]
    return node


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _missing_numbers(block: object, keys: tuple[str, ...], where: str) -> list[str]:
    if not isinstance(block, Mapping):
        return [f"missing {where}"]
    return [f"{where}.{key} is missing or not a number" for key in keys if not _is_number(block.get(key))]


def _number(value: float) -> str:
    return f"{value:g}"


def _load_row(label: str, block: Mapping[str, Any], target: str) -> tuple[str, ...]:
    return (
        label,
        f"{block['per_s']:.1f}/s",
        f"{block['baseline_per_s']:.1f}/s",
        f"{block['ratio']:.3f}x",
        f"{block['cpu_ratio']:.3f}x" if "cpu_ratio" in block else "-",
        f"{block['p50_ms']:.2f}",
        f"{block['p99_ms']:.2f}",
        target,
    )
