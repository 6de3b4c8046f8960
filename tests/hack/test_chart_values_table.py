"""hack/chart_values_table.py: the charts' READMEs hold the table that their values.yaml generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.chart_values_table import CHARTS, END, START, main, rows, table


def leaves(values: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every scalar, list and empty mapping."""
    if isinstance(values, dict) and values:
        return set().union(*(leaves(value, f"{prefix}{key}.") for key, value in values.items()))
    return {prefix.rstrip(".")}


def test_the_readmes_are_in_sync_with_values_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("chart", CHARTS, ids=[chart.name for chart in CHARTS])
def test_every_value_is_in_the_table(chart: Path) -> None:
    keys = {row.key for row in rows(chart / "values.yaml")}
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    uncovered = sorted(
        leaf for leaf in leaves(values) if not any(leaf == key or leaf.startswith(key + ".") for key in keys)
    )
    assert uncovered == []
    readme = (chart / "README.md").read_text(encoding="utf-8")
    assert f"{START}\n{table(chart / 'values.yaml')}\n{END}" in readme


def test_descriptions_come_from_the_comment_above(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "# Section text, not a value's description.\n"
        "server:\n"
        "  # -- Requests per second;\n"
        "  # the burst is twice that.\n"
        "  rateLimit: 50\n"
        "  issuerRef: {}\n"
        "  #   name: my-issuer\n"
        "  duration: 8760h\n"
        "  # -- Labels, one row.\n"
        "  labels:\n"
        "    team: a|b\n",
        encoding="utf-8",
    )
    found = {row.key: row for row in rows(values)}
    assert list(found) == ["server.rateLimit", "server.issuerRef", "server.duration", "server.labels"]
    assert found["server.rateLimit"].description == "Requests per second; the burst is twice that."
    assert (found["server.rateLimit"].type, found["server.rateLimit"].default) == ("int", "`50`")
    assert found["server.duration"].description == ""
    assert found["server.labels"].default == '`{"team": "a\\|b"}`'


def test_check_reports_a_stale_readme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "values.yaml").write_text("# -- How many.\nreplicaCount: 2\n", encoding="utf-8")
    (chart / "README.md").write_text(f"# chart\n\n{START}\nold\n{END}\n", encoding="utf-8")
    monkeypatch.setattr("hack.chart_values_table.CHARTS", (chart,))
    monkeypatch.setattr("hack.chart_values_table.REPO_ROOT", tmp_path)
    assert main(["--check"]) == 1
    assert "chart/README.md is out of date" in capsys.readouterr().err
    assert main([]) == 0
    assert "| `replicaCount` | int | `2` | How many. |" in (chart / "README.md").read_text(encoding="utf-8")
    assert main(["--check"]) == 0
