"""Value types of the config schema: each converts a value read from YAML or a ``key=value`` override to
its type, or refuses it.

PyYAML reads ``1e-3`` as a string (YAML 1.1 wants ``1.0e-3``), so a float key must accept the string
``"1e-3"``; it must refuse ``"abc"`` at load time rather than crash deep inside torch at the first step.
A type's ``name`` is what a refusal shows as "expected ...".
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "Refused",
    "ValueType",
    "Int",
    "Float",
    "Number",
    "Bool",
    "Str",
    "Choice",
    "Pattern",
    "ListOf",
    "Optional",
    "AnyOf",
    "infer_type",
    "shown",
]


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxdict = 2, 4, 4, 4
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 60, 60, 40


def shown(value: Any) -> str:
    """``repr(value)`` cut short whatever its size: a refused value in an error message costs nothing,
    even a YAML alias bomb that expands to billions of items."""
    return _SHOWN.repr(value)


class Refused(ValueError):
    """The value does not convert to the expected type (the caller adds the key and the value); its
    message, when it has one, says why beyond the type."""


class ValueType:
    name = "value"

    def __call__(self, value: Any) -> Any:
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


FLOAT32_MAX = 3.4028234663852886e38  # every float key ends up in a float32 tensor or op


class Float(ValueType):
    """A finite float a float32 can hold; ``above`` (exclusive) and ``maximum`` (inclusive) bound it."""

    name = "float"

    def __init__(
        self, above: float | None = None, maximum: float | None = None, minimum: float | None = None
    ):
        self.above, self.maximum, self.minimum = above, maximum, minimum
        bounds = [f"> {above}" if above is not None else "", f">= {minimum}" if minimum is not None else ""]
        bounds.append(f"<= {maximum}" if maximum is not None else "")
        if any(bounds):
            self.name = "float " + " and ".join(b for b in bounds if b)

    def __call__(self, value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise Refused from None
        if not _is_number(value) or not math.isfinite(value):
            raise Refused
        if abs(value) > FLOAT32_MAX:
            raise Refused(f"overflows float32 (largest {FLOAT32_MAX:.4g})")
        if self.above is not None and not value > self.above:
            raise Refused
        if self.minimum is not None and value < self.minimum:
            raise Refused
        if self.maximum is not None and value > self.maximum:
            raise Refused
        return float(value)


class Int(ValueType):
    """An integer; ``90e3`` (a float or a string) is accepted because it is a whole number."""

    name = "int"

    def __init__(self, minimum: int | None = None) -> None:
        self.minimum = minimum
        if minimum is not None:
            self.name = f"int >= {minimum}"

    def __call__(self, value: Any) -> int:
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text)
            except ValueError:
                value = Float()(text)
        if not _is_number(value) or not math.isfinite(value) or value != int(value):
            raise Refused
        if self.minimum is not None and value < self.minimum:
            raise Refused
        return int(value)


class Number(ValueType):
    """An int or a float, kept as written: ``data.subset`` reads ``1`` (one image) and ``1.0`` (all)
    differently."""

    name = "int | float"

    def __call__(self, value: Any) -> int | float:
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return Float()(value)
        if not _is_number(value):
            raise Refused
        return value if isinstance(value, int) else Float()(value)


class Bool(ValueType):
    name = "bool"
    _WORDS = {
        "true": True,
        "yes": True,
        "on": True,
        "1": True,
        "false": False,
        "no": False,
        "off": False,
        "0": False,
    }

    def __call__(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in self._WORDS:
            return self._WORDS[value.strip().lower()]
        raise Refused


class Str(ValueType):
    """A string; a number is taken as its text (a folder may be called ``2024``)."""

    name = "str"

    def __call__(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if _is_number(value):
            return str(value)
        raise Refused


class Choice(ValueType):
    """One of a fixed set of values (strings, or ints such as ResNet depths)."""

    def __init__(self, *values: str | int) -> None:
        self.values = values
        self.base = Int() if all(isinstance(v, int) for v in values) else Str()
        self.name = "one of " + " | ".join(repr(v) for v in values)

    def __call__(self, value: Any) -> str | int:
        value = self.base(value)
        if value not in self.values:
            raise Refused
        return value


class Pattern(ValueType):
    """A string matching a regular expression (e.g. a device: ``cpu``, ``cuda``, ``cuda:1``)."""

    def __init__(self, regex: str, name: str) -> None:
        self.regex, self.name = re.compile(regex), name

    def __call__(self, value: Any) -> str:
        value = Str()(value)
        if not self.regex.fullmatch(value):
            raise Refused
        return value


class ListOf(ValueType):
    def __init__(self, item: ValueType, length: int | None = None, min_length: int = 0) -> None:
        self.item, self.length, self.min_length = item, length, min_length
        self.name = f"list[{item.name}]" + (f" of length {length}" if length is not None else "")
        if min_length:
            self.name += f" of at least {min_length}"

    def __call__(self, value: Any) -> list[Any]:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
            raise Refused
        if self.length is not None and len(value) != self.length:
            raise Refused
        if len(value) < self.min_length:
            raise Refused
        return [self.item(v) for v in value]


class Optional(ValueType):
    """``null`` or a value of ``inner``."""

    def __init__(self, inner: ValueType) -> None:
        self.inner, self.name = inner, f"{inner.name} | null"

    def __call__(self, value: Any) -> Any:
        return None if value is None else self.inner(value)


class AnyOf(ValueType):
    """The first of ``types`` that accepts the value."""

    def __init__(self, *types: ValueType) -> None:
        self.types, self.name = types, " | ".join(t.name for t in types)

    def __call__(self, value: Any) -> Any:
        for t in self.types:
            try:
                return t(value)
            except Refused:
                continue
        raise Refused


def infer_type(default: Any) -> ValueType | None:
    """The type a default value implies; ``None`` when it implies none (``None``, an empty list)."""
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Int()
    if isinstance(default, float):
        return Float()
    if isinstance(default, str):
        return Str()
    if isinstance(default, list) and default and (item := infer_type(default[0])) is not None:
        return ListOf(item)
    return None
