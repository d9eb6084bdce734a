"""JSON read back into typed values: each field of a dataclass checked against its type hint, so
that a file latprof wrote and someone damaged is refused with the field named, not used."""

from __future__ import annotations

import math
from dataclasses import is_dataclass
from types import UnionType
from typing import Union, get_args, get_origin, get_type_hints


def typed(cls, data, where: str):
    """``cls`` (a dataclass) from JSON ``data``, each field checked against its type hint (int,
    float, str, bool, dict, tuple of str, a nested dataclass, or one of them or None); a missing
    field takes its default.  A ValueError says which field is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} is {type(data).__name__}, not an object")
    hints = get_type_hints(cls)
    unknown = sorted(set(data) - set(hints), key=str)
    if unknown:
        raise ValueError(f"{where} has an unknown field {unknown[0]!r}")
    try:
        return cls(**{name: typed_value(data[name], hints[name], f"{where}: {name}") for name in data})
    except TypeError as exc:  # a field without a default is missing
        raise ValueError(f"{where}: {exc}") from None


def typed_value(value, hint, where: str):
    if is_dataclass(hint):
        return typed(hint, value, where)
    options = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    hint = next(option for option in options if option is not type(None))
    if get_origin(hint) is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    plain = {float: (int, float), int: (int,), str: (str,), bool: (bool,), dict: (dict,)}.get(hint, ())
    if isinstance(value, plain) and (hint is bool or not isinstance(value, bool)) and \
            (hint is not float or math.isfinite(value)):
        return float(value) if hint is float else value
    raise ValueError(f"{where} is {value!r}, not {getattr(hint, '__name__', hint)}")
