"""One declaration per option gives its flag, its environment variable and its help, for all three programs.

esi-cli, ``esi-webhook`` and ``esi-federation`` declare their options as ``Option`` values; ``add_options``
puts them on an argparse parser and ``resolve`` reads each one from the command line, else from its
environment variable, else its default, so that ``--help`` and the resolution can never disagree.
Standard library only and no ``dataclasses``/``typing`` at run time: esi-cli imports this at start-up.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Mapping, Sequence

VALUE, SWITCH, REPEATED = "value", "switch", "repeated"
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


class OptionError(ValueError):
    """An option's value cannot be used; the message names the flag or the environment variable."""


class Option:
    """A command-line flag, the environment variable that stands in for it, its help and its default.

    ``kind`` is ``VALUE`` (takes one value), ``SWITCH`` (on when given; the variable takes true/false)
    or ``REPEATED`` (given several times; ``split`` turns the variable's text into entries, one per
    line by default). ``parse`` turns a text into the value the program uses and raises ``ValueError``
    when it cannot; the error then names the flag or the variable the text came from.
    """

    __slots__ = ("choices", "default", "dest", "env", "flag", "help", "kind", "metavar", "parse", "split")

    def __init__(
        self,
        flag: str,
        help: str,
        *,
        env: str | None = None,
        default: str | None = None,
        metavar: str | None = None,
        choices: Sequence[str] | None = None,
        kind: str = VALUE,
        parse: Callable[[str], object] | None = None,
        split: Callable[[str], list[str]] | None = None,
        dest: str | None = None,
    ) -> None:
        self.flag = flag
        self.help = help
        self.env = env
        self.default = default
        self.metavar = metavar
        self.choices = tuple(choices) if choices is not None else None
        self.kind = kind
        self.parse = parse
        self.split = split
        self.dest = dest or flag.lstrip("-").replace("-", "_")

    def help_text(self) -> str:
        """The help, its default and its environment variable, as every program's ``--help`` shows them."""
        default = f" (default: {self.default})" if self.default else ""
        env = f" [env {self.env}]" if self.env else ""
        return f"{self.help}{default}{env}"

    def resolve(self, given: Mapping[str, object], environ: Mapping[str, str]) -> object:
        """The command-line value, else the environment variable's, else the default; parsed."""
        value = given.get(self.dest)
        if value is not None and value != []:
            return self._parsed(value, self.flag)
        raw = environ.get(self.env, "") if self.env else ""
        if raw.strip():
            return self._parsed(self._from_text(raw, self.env or self.flag), self.env or self.flag)
        if self.default is None:
            return False if self.kind == SWITCH else [] if self.kind == REPEATED else None
        return self._parsed(self._from_text(self.default, self.flag), self.flag)

    def _from_text(self, text: str, where: str) -> object:
        if self.kind == SWITCH:
            return _switch(text, where)
        if self.kind == REPEATED:
            try:
                return (self.split or _lines)(text)
            except ValueError as exc:
                raise OptionError(f"{where}: {exc}") from None
        return text

    def _parsed(self, value: object, where: str) -> object:
        if self.kind == SWITCH:
            return bool(value)
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{where} {value!r}: choose one of {', '.join(self.choices)}")
        if self.parse is None:
            return value
        try:
            if isinstance(value, list):
                return [self.parse(entry) for entry in value]
            return self.parse(str(value))
        except ValueError as exc:
            raise OptionError(f"{where}: {exc}") from None


def add_options(parser: argparse._ActionsContainer, options: Iterable[Option]) -> None:
    """Add every option's flag to ``parser``; values stay unresolved (None when not given)."""
    for option in options:
        if option.kind == SWITCH:
            parser.add_argument(
                option.flag, dest=option.dest, action="store_const", const=True, help=option.help_text()
            )
            continue
        parser.add_argument(
            option.flag,
            dest=option.dest,
            metavar=option.metavar,
            choices=option.choices,
            action="append" if option.kind == REPEATED else "store",
            help=option.help_text(),
        )


def resolve(
    options: Iterable[Option], given: Mapping[str, object], environ: Mapping[str, str]
) -> dict[str, object]:
    """Every option's value by ``dest`` (see ``Option.resolve``); ``OptionError`` names the first bad one."""
    return {option.dest: option.resolve(given, environ) for option in options}


def _switch(text: str, where: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise OptionError(f"{where} {text!r}: use true or false")


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]
