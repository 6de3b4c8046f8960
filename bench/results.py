"""``bench/results.json`` in the exact shape of DESIGN §13, and the table ``make bench`` prints.

Pure: measurements in, a dict and text out. The targets are reported next to each number and never
asserted; ``check_shape`` only checks that the document has every key of the contract.
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
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A target of the issue: where its number is in the results and whether the number meets it."""

    label: str
    path: tuple[str, ...]
    wording: str
    met: Callable[[float], bool]


def targets(federation_workers: int) -> tuple[Target, ...]:
    """The five targets (reported, not asserted); the store-read one depends on the worker count."""
    return (
        Target("webhook vs bare Flask", ("webhook", "ratio"), ">= 0.8x", lambda r: r >= 0.8),
        Target("federation (fake) vs bare", ("federation", "fake", "ratio"), ">= 0.6x", lambda r: r >= 0.6),
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
    )


def build_results(m: Measurements) -> dict[str, Any]:
    """The results document: DESIGN §13's keys first, then extras (targets, details)."""
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
    results["targets"] = {target.label: _judge(results, target) for target in targets(m.federation_workers)}
    results.update(m.extras)
    return results


def check_shape(results: Mapping[str, Any]) -> list[str]:
    """Every way ``results`` differs from DESIGN §13's shape (missing keys, non-numbers); empty if none."""
    problems = [f"missing {key}" for key in TOP_KEYS if key not in results]
    problems += _missing_numbers(results.get("webhook"), WEBHOOK_KEYS, "webhook")
    federation = results.get("federation")
    for store in FEDERATION_STORES:
        block = federation.get(store) if isinstance(federation, Mapping) else None
        problems += _missing_numbers(block, LOAD_KEYS, f"federation.{store}")
    problems += _missing_numbers(results.get("cli"), CLI_KEYS, "cli")
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    missed = [label for label, t in results.get("targets", {}).items() if not t["met"]]
    lines.append("")
    lines.append("cpu ratio: the baseline's server CPU time per request over the measured one's")
    lines.append(f"machine: {results['machine']}")
    lines.append("targets missed: " + (", ".join(missed) if missed else "none"))
    failures = _failures(results)
    if failures:
        lines.append("requests that failed (non-2xx or transport errors): " + ", ".join(failures))
    return "\n".join(line.rstrip() for line in lines)


def _failures(results: Mapping[str, Any]) -> list[str]:
    blocks = {
        "webhook": results["webhook"],
        **{f"federation {k}": v for k, v in results["federation"].items()},
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
