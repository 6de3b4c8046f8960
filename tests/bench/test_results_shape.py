"""bench/results.json's documented shape and the table, from synthetic numbers: no timing is checked."""

from __future__ import annotations

import json
import os
import ssl
import sys
from pathlib import Path

import pytest

from bench.loadgen import LoadError, LoadResult, Request, Target, merge
from bench.results import (
    Measurements,
    Throughput,
    build_results,
    check_shape,
    format_table,
    write_results,
)
from bench.scrape import counter_sum
from bench.startup import StartupError, interpreter_of, summarize_importtime


def synthetic(**overrides: object) -> Measurements:
    values: dict[str, object] = {
        "webhook": Throughput(
            per_s=900.0, p50_ms=4.0, p99_ms=20.0, requests=9000, failed=0, cpu_ms_per_request=1.25
        ),
        "webhook_baseline": Throughput(
            per_s=1000.0, p50_ms=3.0, p99_ms=15.0, requests=10000, failed=0, cpu_ms_per_request=1.0
        ),
        "federation_fake": Throughput(per_s=700.0, p50_ms=10.0, p99_ms=40.0, requests=7000, failed=0),
        "federation_openbao": Throughput(per_s=300.0, p50_ms=30.0, p99_ms=90.0, requests=3000, failed=1),
        "federation_baseline": Throughput(per_s=1000.0, p50_ms=5.0, p99_ms=25.0, requests=10000, failed=0),
        "cli_fetch_s": 0.12,
        "python_pass_s": 0.03,
        "jwks_fetches_per_10k": 1,
        "store_reads_per_burst_100": 2,
        "machine": "test machine x2",
        "federation_workers": 2,
        "pod_start": {
            "webhook": Throughput(
                per_s=300.0, p50_ms=9.0, p99_ms=30.0, requests=3000, failed=0, cpu_ms_per_request=2.5
            ),
            "webhook_baseline": Throughput(
                per_s=400.0, p50_ms=7.0, p99_ms=25.0, requests=4000, failed=0, cpu_ms_per_request=2.0
            ),
            "federation_fake": Throughput(
                per_s=250.0, p50_ms=12.0, p99_ms=50.0, requests=2500, failed=0, cpu_ms_per_request=3.0
            ),
            "federation_openbao": Throughput(
                per_s=150.0, p50_ms=20.0, p99_ms=80.0, requests=1500, failed=0, cpu_ms_per_request=4.0
            ),
            "federation_baseline": Throughput(
                per_s=500.0, p50_ms=6.0, p99_ms=20.0, requests=5000, failed=0, cpu_ms_per_request=1.75
            ),
        },
        "handshake_cpu_ms": {
            "webhook": 1.0,
            "webhook_baseline": 1.0,
            "federation_fake": 1.25,
            "federation_openbao": 1.25,
            "federation_baseline": 1.25,
        },
        "storms": {
            "serve_defaults": {
                "pods": 300,
                "spread_s": 10.0,
                "errors": 0,
                "pods_per_s": 29.5,
                "p50_s": 0.2,
                "p99_s": 0.9,
                "store_reads_per_key_max": 4,
                "tls_key": "ec-p256",
                "handshake_cpu_ms": 0.6,
            },
            "chart_defaults": {
                "pods": 300,
                "spread_s": 10.0,
                "errors": 1,
                "pods_per_s": 20.0,
                "p50_s": 0.5,
                "p99_s": 2.5,
                "store_reads_per_key_max": 12,
                "tls_key": "rsa-2048",
                "handshake_cpu_ms": 1.6,
                "esi_cli": "self-contained",
                "cli_cpu_ms_per_pod": 45.25,
            },
        },
        "extras": {"importtime": {"total_ms": 9.5}},
    }
    values.update(overrides)
    return Measurements(**values)  # type: ignore[arg-type]


def test_written_results_have_every_key_of_the_design_shape(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(build_results(synthetic()), path)
    results = json.loads(path.read_text())
    assert set(results) >= {
        "webhook",
        "federation",
        "cli",
        "jwks_fetches_per_10k",
        "store_reads_per_burst_100",
        "machine",
    }
    assert set(results["webhook"]) >= {"per_s", "baseline_per_s", "ratio", "p50_ms", "p99_ms"}
    assert set(results["federation"]) == {"fake", "openbao"}
    for store in ("fake", "openbao"):
        assert set(results["federation"][store]) >= {"per_s", "baseline_per_s", "ratio", "p99_ms"}
    assert set(results["cli"]) >= {"fetch_s", "python_pass_s", "ratio"}
    assert isinstance(results["machine"], str)
    assert set(results["pod_start"]["webhook"]) >= {"per_s", "baseline_per_s", "ratio", "p50_ms", "p99_ms"}
    for store in ("fake", "openbao"):
        assert set(results["pod_start"]["federation"][store]) >= {
            "per_s",
            "baseline_per_s",
            "ratio",
            "p99_ms",
        }
    assert set(results["storm"]) == {"serve_defaults", "chart_defaults"}
    assert check_shape(results) == []


def test_pod_start_ratios_and_the_cpu_split_come_from_both_patterns() -> None:
    results = build_results(synthetic())
    assert results["pod_start"]["webhook"]["ratio"] == pytest.approx(0.75)
    assert results["pod_start"]["federation"]["fake"]["ratio"] == pytest.approx(0.5)
    assert results["pod_start"]["federation"]["fake"]["cpu_ratio"] == pytest.approx(1.75 / 3.0, abs=1e-3)
    split = results["server_cpu_ms_per_request"]["webhook"]
    assert split == {"keep_alive": 1.25, "pod_start": 2.5, "connection": 1.25, "handshake_only": 1.0}
    assert results["targets"]["webhook vs bare Flask (pod-start)"]["met"] is False
    assert results["targets"]["federation (fake) vs bare (pod-start)"]["met"] is False


def test_each_storm_is_judged_on_errors_reads_per_key_and_p99() -> None:
    targets = build_results(synthetic())["targets"]
    assert targets["storm serve_defaults: errors"]["met"] is True
    assert targets["storm serve_defaults: store reads per key"] == {"target": "<= 5", "value": 4, "met": True}
    assert targets["storm serve_defaults: p99 start to files written"]["met"] is True
    assert targets["storm chart_defaults: errors"] == {"target": "0", "value": 1, "met": False}
    assert targets["storm chart_defaults: store reads per key"]["met"] is False
    assert targets["storm chart_defaults: p99 start to files written"]["met"] is False


def test_storm_and_pod_start_rows_are_in_the_table() -> None:
    table = format_table(build_results(synthetic()))
    assert any(line.split()[:3] == ["pod-start:", "webhook", "/mutate"] for line in table.splitlines())
    chart_row = next(line for line in table.splitlines() if line.startswith("chart_defaults"))
    assert chart_row.split() == [
        "chart_defaults",
        "300/10s",
        "1",
        "20.0",
        "0.500",
        "2.500",
        "12",
        "rsa-2048",
        "1.600",
        "self-contained",
        "45.2",
    ]


def test_ratios_are_the_measured_number_over_its_baseline() -> None:
    results = build_results(synthetic())
    assert results["webhook"]["ratio"] == pytest.approx(0.9)
    assert results["federation"]["fake"]["ratio"] == pytest.approx(0.7)
    assert results["federation"]["openbao"]["ratio"] == pytest.approx(0.3)
    assert results["cli"]["ratio"] == pytest.approx(4.0)
    assert results["webhook"]["cpu_ratio"] == pytest.approx(0.8)


def test_extras_are_kept_next_to_the_contract_keys() -> None:
    results = build_results(synthetic())
    assert results["importtime"] == {"total_ms": 9.5}
    assert results["targets"]["webhook vs bare Flask"]["met"] is True


def test_a_missed_target_is_reported_not_raised() -> None:
    results = build_results(synthetic(store_reads_per_burst_100=30))
    burst = results["targets"]["store reads, burst of 100"]
    assert burst == {"target": "<= 2 (workers)", "value": 30, "met": False}
    missed = next(line for line in format_table(results).splitlines() if line.startswith("targets missed: "))
    assert "store reads, burst of 100" in missed


def test_failed_requests_are_called_out_under_the_table() -> None:
    table = format_table(build_results(synthetic()))
    assert "requests that failed (non-2xx or transport errors): federation openbao 1, its baseline 0" in table


def test_shape_check_names_what_is_missing_or_not_a_number() -> None:
    results = build_results(synthetic())
    del results["federation"]["openbao"]["p99_ms"]
    results["cli"]["ratio"] = "fast"
    del results["machine"]
    del results["pod_start"]["federation"]["fake"]["ratio"]
    del results["storm"]["chart_defaults"]
    assert check_shape(results) == [
        "missing machine",
        "federation.openbao.p99_ms is missing or not a number",
        "cli.ratio is missing or not a number",
        "pod_start.federation.fake.ratio is missing or not a number",
        "missing storm.chart_defaults",
    ]


def test_table_puts_each_number_next_to_its_baseline_ratio_and_target() -> None:
    table = format_table(build_results(synthetic()))
    webhook_row = next(line for line in table.splitlines() if line.startswith("webhook /mutate"))
    assert webhook_row.split() == [
        "webhook",
        "/mutate",
        "(reviews/s)",
        "900.0/s",
        "1000.0/s",
        "0.900x",
        "0.800x",
        "4.00",
        "20.00",
        ">=",
        "0.8x",
    ]
    assert "machine: test machine x2" in table


def test_merged_load_runs_pool_latencies_and_add_up_counts() -> None:
    first = LoadResult(1.0, [0.001, 0.003], {200: 2}, transport_errors=0)
    second = LoadResult(2.0, [0.004, 0.002], {200: 1, 503: 1}, transport_errors=1)
    merged = merge([first, second])
    assert merged.latencies_s == [0.001, 0.002, 0.003, 0.004]
    assert merged.statuses == {200: 3, 503: 1}
    assert (merged.ok, merged.failed, merged.per_s) == (3, 2, 1.0)
    assert merged.percentile_ms(0.5) == pytest.approx(2.0)


def test_load_is_refused_for_an_address_outside_loopback() -> None:
    with pytest.raises(LoadError, match=r"127\.0\.0\.0/8"):
        Target("10.0.0.1", 443, ssl.create_default_context())


def test_counters_are_summed_over_the_label_sets_asked_for() -> None:
    text = "\n".join(
        [
            "# TYPE esi_federation_store_reads_total counter",
            'esi_federation_store_reads_total{result="ok",store="vault-openbao"} 3.0',
            'esi_federation_store_reads_total{result="error",store="vault-openbao"} 1.0',
            'esi_federation_store_reads_total{result="ok",store="vault-prod"} 7.0',
            "esi_federation_store_reads_created 1.7e9",
        ]
    )
    assert counter_sum(text, "esi_federation_store_reads_total", {"store": "vault-openbao"}) == 4.0
    assert counter_sum(text, "esi_federation_store_reads_total") == 11.0


def test_importtime_summary_names_the_heaviest_imports() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      3000 |       5000 |   argparse",
            "import time:       100 |        200 |   cli.log",
            "import time:       500 |       5700 | cli.main",
            "import time:      9000 |       9000 | site",
        ]
    )
    summary = summarize_importtime(stderr, "cli.main", top=2)
    assert summary["total_ms"] == 5.7
    assert summary["heaviest_self_ms"] == {"site": 9.0, "argparse": 3.0}
    assert summary["heaviest_top_level_cumulative_ms"] == {"site": 9.0, "cli.main": 5.7}


def test_an_interpreter_behind_a_shell_shim_is_refused(tmp_path: Path) -> None:
    shim = tmp_path / "python"
    shim.write_text('#!/bin/sh\nexec real-python "$@"\n')
    script = tmp_path / "esi-cli"
    script.write_text(f"#!{shim}\nimport cli.main\n")
    with pytest.raises(StartupError, match="shim"):
        interpreter_of(script)


def test_the_interpreter_of_an_env_shebang_is_looked_up_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_binary = os.path.realpath(sys.executable)
    (tmp_path / "venv-python").symlink_to(real_binary)
    monkeypatch.setenv("PATH", str(tmp_path))
    script = tmp_path / "esi-cli"
    script.write_text("#!/usr/bin/env venv-python\nimport cli.main\n")
    interpreter = interpreter_of(script)
    assert interpreter.path == str(tmp_path / "venv-python")
    assert interpreter.binary == real_binary


def test_a_request_never_shows_its_bearer_token_in_its_repr() -> None:
    request = Request("POST", "/v1/secrets", b"{}", {"Authorization": "Bearer secret-token-value"})
    assert "secret-token-value" not in repr(request)
