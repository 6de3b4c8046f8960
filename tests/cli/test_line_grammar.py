"""One line grammar for ESI_FILES / ESI_ENV, shared by the webhook (writer) and esi-cli (reader).

Every character Python ends a line at is tried: the webhook must refuse what esi-cli would split, and
esi-cli must never split where the webhook did not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli.errors import UsageError
from cli.parser import build_parser
from cli.refs import LINE_BREAKS, ReferenceError, join_lines, parse_ref, split_lines
from cli.settings import load_secrets
from webhook import annotations
from webhook.errors import PodRejected

P = annotations.PREFIX
# Every code point at which str.splitlines ends a line, computed rather than listed.
PYTHON_LINE_BREAKS = sorted(chr(c) for c in range(sys.maxunicode + 1) if len(f"a{chr(c)}b".splitlines()) > 1)
INNER_BREAKS = [c for c in PYTHON_LINE_BREAKS if c != "\n"]


def test_the_grammar_knows_every_line_break_python_knows() -> None:
    assert set(PYTHON_LINE_BREAKS) == LINE_BREAKS
    assert {"\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"} < LINE_BREAKS


@pytest.mark.parametrize("brk", INNER_BREAKS, ids=[f"U+{ord(c):04X}" for c in INNER_BREAKS])
def test_a_line_break_inside_an_entry_is_an_error_never_a_separator(brk: str) -> None:
    with pytest.raises(ReferenceError, match="line 1"):
        split_lines(f"app.conf=vault:app{brk}/etc/passwd=vault:evil")
    with pytest.raises(ReferenceError):
        parse_ref(f"vault:app{brk}x")


@pytest.mark.parametrize("brk", INNER_BREAKS, ids=[f"U+{ord(c):04X}" for c in INNER_BREAKS])
def test_the_webhook_refuses_what_esi_cli_would_split(brk: str) -> None:
    for key in (P + "file-app.conf", P + "env-APP"):
        pod_annotations = {P + "inject": "true", key: f"vault:app{brk}/etc/passwd=vault:evil"}
        with pytest.raises(PodRejected, match="single line"):
            annotations.parse(pod_annotations)
    with pytest.raises(PodRejected, match="store"):
        annotations.parse({P + "inject": "true", P + "store": f"vault{brk}x", P + "file-a": "k"})


@pytest.mark.parametrize("brk", INNER_BREAKS, ids=[f"U+{ord(c):04X}" for c in INNER_BREAKS])
def test_esi_cli_refuses_an_environment_list_with_another_line_break(brk: str, tmp_path: Path) -> None:
    values = vars(build_parser().parse_args(["fetch"]))
    for variable, entry in (("ESI_FILES", "a=vault:k"), ("ESI_ENV", "A=vault:k")):
        environ = {variable: f"{entry}{brk}/etc/passwd=vault:evil", "ESI_DIR": str(tmp_path)}
        with pytest.raises(UsageError, match=variable):
            load_secrets(values, environ)


def test_what_the_webhook_writes_esi_cli_reads_back_entry_for_entry() -> None:
    entries = ["a.conf=vault:db#pass.word", "b=kube:app.token", "c=generator:ns/Password/p"]
    assert split_lines(join_lines(entries)) == entries
    # Windows line ends and blank lines are tolerated: blanks around an entry are not part of it.
    assert split_lines("a=s:k\r\n\r\n  b=s:k  \n") == ["a=s:k", "b=s:k"]
