"""Nested objects to flat columns (reference §7.3): pure, no I/O.

``{"product": {"sku": "A1"}}`` becomes ``product_sku``; ``context.userAgent`` becomes
``context_user_agent``. Arrays are kept as values (they are stored as JSON text). Every key is
snake-cased on its own and the parts joined with ``_``, so ``a.b`` and ``a_b`` land in one column:
the first one seen keeps it and the other is reported as :class:`Lost`, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mainstem.warehouse.naming import snakecase


@dataclass(frozen=True, slots=True)
class Lost:
    """A value that has no column of its own: its path as sent, the column it wanted, why."""

    path: str
    column: str
    reason: str
    value: Any


_names: dict[str, dict[str, str]] = {}
"""prefix → key → column name, so the hot path makes one look-up per key. Bounded (64 prefixes
of 4,096 keys): hostile input can invent names forever, and a name not kept is just recomputed.
"""


def join(prefix: str, key: str) -> str:
    part = snakecase(key)
    name = f"{prefix}_{part}" if prefix and part else prefix or part
    names = _names.get(prefix)
    if names is None and len(_names) < 64:
        names = _names[prefix] = {}
    if names is not None and len(names) < 4096:
        names[key] = name
    return name


def flatten(
    obj: Mapping[str, Any], prefix: str, out: dict[str, Any], lost: list[Lost], path: str
) -> None:
    """Add the leaves of ``obj`` to ``out`` as ``column → value``.

    Args:
        obj: the object to flatten (properties, traits or context).
        prefix: snake-cased column prefix (``"context"``, or ``""`` for properties).
        out: the row being built; a column already in it is never overwritten.
        lost: collects values whose column is taken or whose name is empty.
        path: the dotted path of ``obj`` as sent, for :class:`Lost` reports.
    """
    names = _names.get(prefix) or {}
    for key, value in obj.items():
        name = names.get(key) or join(prefix, key)
        if type(value) is dict:
            if value:
                flatten(value, name, out, lost, f"{path}.{key}")
            continue
        if not name:
            lost.append(Lost(f"{path}.{key}", "", "unnamed", value))
        elif name in out:
            lost.append(Lost(f"{path}.{key}", name, "name_collision", value))
        else:
            out[name] = value
