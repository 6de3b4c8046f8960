"""The command line in the form pods give it, read without argparse.

Importing argparse (with ``gettext`` and ``locale``) and building esi-cli's parser costs about 9 ms of
CPU, a seventh of a pod's whole ``esi-cli fetch``. The injected ``esi-init`` container passes only the
command and takes its options from ``ESI_*`` variables, and hand-written manifests use
``--flag VALUE`` / ``--flag=VALUE``; those plain forms are read here. Everything else (``--help``,
mistakes, abbreviations, a value that starts with ``-``) is left to the argparse parser in
``cli.parser``, so help and error messages come from one place. Where this reads a command line, the
result is exactly argparse's (tests/cli/test_arguments.py compares the two).
"""

from __future__ import annotations

from cli.flags import COMMANDS
from cli.options import REPEATED, SWITCH

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from cli.options import Option


def parse_plain(arguments: Sequence[str]) -> dict[str, object] | None:
    """The command and its options as argparse's namespace would hold them; ``None`` if not plain.

    Plain: a command first, then only that command's flags, each exactly as declared, with its value
    after ``=`` or as the next argument, a value that does not start with ``-``; a switch without one.
    """
    if not arguments or arguments[0] not in COMMANDS:
        return None
    declared = {option.flag: option for group in COMMANDS[arguments[0]] for option in group}
    values: dict[str, object] = {option.dest: None for option in declared.values()}
    values["command"] = arguments[0]
    try:
        for option, value in _given(arguments[1:], declared):
            if option.kind == SWITCH:
                values[option.dest] = True
            elif option.kind == REPEATED:
                entries = values[option.dest]
                values[option.dest] = [*entries, value] if isinstance(entries, list) else [value]
            else:
                values[option.dest] = value
    except _NotPlainError:
        return None
    return values


class _NotPlainError(Exception):
    """A command line that argparse has to read."""


def _given(arguments: Sequence[str], declared: Mapping[str, Option]) -> Iterator[tuple[Option, str]]:
    """Each flag with its value (``""`` for a switch); ``_NotPlainError`` at the first other form."""
    position = 0
    while position < len(arguments):
        flag, equals, value = arguments[position].partition("=")
        option = declared.get(flag)
        position += 1
        if option is None or (option.kind == SWITCH and equals):
            raise _NotPlainError
        if option.kind == SWITCH:
            yield option, ""
            continue
        if not equals:
            if position == len(arguments):
                raise _NotPlainError
            value = arguments[position]
            position += 1
        # argparse would take such a value for a flag, drop a "--" one, and refuse one not in choices.
        if value.startswith("-") or (option.choices is not None and value not in option.choices):
            raise _NotPlainError
        yield option, value
