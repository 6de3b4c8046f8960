"""YAML for configuration files and manifests: bounded in size, and in what aliases expand to.

PyYAML shares the object an alias points at, so a document of a few hundred bytes with nested aliases
(``&a [x, x, ...]``, ``&b [*a, *a, ...]``, ...) loads quickly but stands for billions of nodes, and
everything that walks it afterwards (validation, hashing, serialising) does that work. Each document's
node graph is measured before it is turned into objects, counting every alias as the whole subtree it
names; past ``MAX_EXPANDED_NODES`` the document is refused.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_EXPANDED_NODES = 250_000

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRefused(Exception):
    """A YAML text that is not loaded: too large, too large once its aliases are expanded, or invalid."""


def load_all(text: str) -> list[Any]:
    """Every document of ``text``, each checked before it is built; ``YamlRefused`` names the problem."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlRefused(f"{len(text)} characters, more than the {MAX_YAML_BYTES} accepted")
    loader = _Loader(text)
    documents: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            _check_expansion(node, len(documents) + 1)
            documents.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not valid YAML: {_where(exc)}") from None
    finally:
        loader.dispose()
    return documents


def _check_expansion(root: yaml.Node, number: int) -> None:
    # Expanded size of every node, computed once per node: linear in the graph, whatever it expands to.
    sizes: dict[int, int] = {}
    pending: list[tuple[yaml.Node, bool]] = [(root, False)]
    in_progress: set[int] = set()
    while pending:
        node, children_done = pending.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in in_progress:
                raise YamlRefused(f"document {number}: an alias refers to a node that contains it")
            in_progress.add(key)
            pending.append((node, True))
            pending.extend((child, False) for child in children if id(child) not in sizes)
            continue
        in_progress.discard(key)
        size = 1 + sum(sizes[id(child)] for child in children)
        if size > MAX_EXPANDED_NODES:
            raise YamlRefused(
                f"document {number} expands to more than {MAX_EXPANDED_NODES} nodes "
                "(YAML aliases repeating large parts); write it out without aliases"
            )
        sizes[key] = size


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _where(exc: yaml.YAMLError) -> str:
    # The problem and its position, never the snippet PyYAML quotes: it may be a secret's value.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else str(problem)
