"""Walking pglast's parse trees: the one traversal the pinning analysis and the parameter inference share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast


def walk(node: Any) -> Iterator[ast.Node]:
    """Every AST node at or below `node` (pglast's nodes are slotted objects; children sit in tuples)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, list | tuple):
            stack.extend(current)
        elif isinstance(current, ast.Node):
            yield current
            stack.extend(getattr(current, name, None) for name in getattr(type(current), "__slots__", ()))


def relation_name(node: Any) -> str | None:
    return str(node.relname) if isinstance(node, ast.RangeVar) and node.relname else None
