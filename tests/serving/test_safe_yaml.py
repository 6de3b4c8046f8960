"""YAML alias bombs and oversize documents are refused with a clear message, by check, reload and mutate."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from federation.main import main as federation_main
from serving.safe_yaml import MAX_EXPANDED_NODES, MAX_YAML_BYTES, YamlRefused, load_all
from tests.federation.helpers_requests import post_secrets
from tests.helpers_stack import running_stack
from webhook.main import main as webhook_main


def _bomb(levels: int = 9) -> str:
    """A few hundred bytes standing for 9**levels strings (the billion laughs, in YAML)."""
    names = "abcdefghijklmnop"[:levels]
    lines = ["apiVersion: v1", "kind: Pod", "metadata: {name: bomb}", "spec:"]
    lines.append(f"  {names[0]}: &{names[0]} [" + ", ".join(["lol"] * 9) + "]")
    for previous, name in itertools.pairwise(names):
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    bomb = _bomb()
    assert len(bomb) < 600
    started = time.perf_counter()
    with pytest.raises(YamlRefused, match=f"expands to more than {MAX_EXPANDED_NODES} nodes"):
        load_all(bomb)
    assert time.perf_counter() - started < 0.5


def test_aliases_that_expand_to_little_are_fine() -> None:
    assert load_all("a: &x [1, 2]\nb: *x\n---\nc: 3\n") == [{"a": [1, 2], "b": [1, 2]}, {"c": 3}]


def test_recursive_and_oversize_documents_are_refused() -> None:
    with pytest.raises(YamlRefused, match="contains it"):
        load_all("a: &x [1, *x]\n")
    with pytest.raises(YamlRefused, match="more than"):
        load_all("# " + "x" * MAX_YAML_BYTES + "\n")


def test_invalid_yaml_is_named_by_position_without_quoting_it() -> None:
    with pytest.raises(YamlRefused, match=r"line \d+, column \d+") as caught:
        load_all("password: s3cr3t-value\nb: [1, 2\nc: d\n")
    assert "s3cr3t" not in str(caught.value)


def test_check_refuses_an_alias_bomb_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bomb.yaml").write_text(_bomb(), encoding="utf-8")
    started = time.perf_counter()
    assert federation_main(["check", "--manifests", str(tmp_path)]) == 1
    assert time.perf_counter() - started < 5
    out = capsys.readouterr().out
    assert "bomb.yaml" in out
    assert "YAML aliases" in out


def test_a_reload_refuses_an_alias_bomb_and_keeps_the_last_good_configuration(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        since = stack.reload_count()
        (stack.manifests_dir / "bomb.yaml").write_text(_bomb(), encoding="utf-8")
        stack.wait_for_reload(since)
        assert post_secrets(stack, stack.mint()).status_code == 200


def test_mutate_refuses_an_alias_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text(_bomb(), encoding="utf-8")
    config = ["--server-url", "https://esi-federation.example.com", "--cluster-name", "alpha"]
    config += ["--init-image", "example.com/esi-cli:1"]
    assert webhook_main(["mutate", "-f", str(pod), *config]) == 2
    assert "YAML aliases" in capsys.readouterr().err
