"""Attack parameters given by name, as on the command line (``--param key=value``) or in a
grid's ``attack_params``: checked against the attack's constructor before any query is paid.

Each value is converted to the type the constructor's annotation names (``int``, ``float``,
``bool``, ``str``, ``None`` and tuples of ints or floats such as ``hidden_layer_sizes``);
a value that fits none of them, an unknown name, or a name the command sets itself
(``random_state``, ``batch_size``: ``--seed``, ``--batch-size``) is a
:class:`~stealml.exceptions.ConfigurationError` with one line naming the accepted keys.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from stealml.attacks.base import Attack
from stealml.exceptions import ConfigurationError

__all__ = ["attack_parameters", "check_attack_params", "parse_param_items"]

RESERVED = {"random_state": "--seed", "batch_size": "--batch-size"}


def attack_parameters(cls: type[Attack]) -> dict[str, inspect.Parameter]:
    """The constructor parameters a user may set (all but ``self`` and the reserved ones)."""
    sig = inspect.signature(cls.__init__)
    return {name: p for name, p in sig.parameters.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def parse_param_items(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a missing ``=`` or a repeated key is
    an error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(f"--param {item!r}: write it as KEY=VALUE")
        if key in out:
            raise ConfigurationError(f"--param {key} is given twice")
        out[key] = value.strip()
    return out


def check_attack_params(cls: type[Attack], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` converted to the types ``cls``'s constructor takes.

    Strings (from the command line) are read as JSON literals where they are one
    (``3``, ``0.5``, ``true``, ``null``, ``[64, 32]``), else as text; ``64,32`` is a tuple
    where the parameter takes one. Values already typed (from a grid's TOML or JSON) are
    checked as they are.

    >>> from stealml.attacks import TopDown
    >>> check_attack_params(TopDown, {"checks": "0", "epsilon": "1e-4"})
    {'checks': 0, 'epsilon': 0.0001}
    """
    accepted = attack_parameters(cls)
    hints = typing.get_type_hints(cls.__init__)
    settable = [f"{k}={accepted[k].default!r}" for k in sorted(accepted) if k not in RESERVED]
    out: dict[str, Any] = {}
    for key, raw in params.items():
        if key in RESERVED:
            raise ConfigurationError(f"attack {cls.name!r}: set {key} with {RESERVED[key]}, "
                                     "not as a parameter")
        if key not in accepted:
            raise ConfigurationError(f"attack {cls.name!r} has no parameter {key!r}; it takes: "
                                     f"{', '.join(settable) or 'none'}")
        hint = hints.get(key, Any)
        try:
            out[key] = _convert(raw, hint)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"attack {cls.name!r}: parameter {key}={raw!r} is not {_describe(hint)}"
            ) from None
    return out


def _options(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _describe(hint: Any) -> str:
    names = []
    for option in _options(hint):
        if option is type(None):
            names.append("null")
        elif typing.get_origin(option) is tuple:
            element = (typing.get_args(option) or (float,))[0]
            names.append("a list of integers" if element is int else "a list of numbers")
        elif option is bool:
            names.append("true or false")
        elif option in (int, float):
            names.append("an integer" if option is int else "a number")
        else:
            names.append(getattr(option, "__name__", str(option)))
    return " or ".join(names)


def _literal(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        return raw


def _convert(raw: Any, hint: Any) -> Any:
    """``raw`` as the first of the hint's types it fits (TypeError/ValueError if none)."""
    value = _literal(raw)
    options = _options(hint)
    if Any in options:
        return value
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(raw, str) and value is not None:
            return raw
        if typing.get_origin(option) is tuple:
            converted = _as_tuple(raw, value, option)
            if converted is not None:
                return converted
    raise ValueError(raw)


def _as_tuple(raw: Any, value: Any, hint: Any) -> tuple[Any, ...] | None:
    items = value
    if isinstance(raw, str) and not isinstance(value, list):
        items = [_literal(part) for part in raw.split(",") if part.strip()]
    if isinstance(items, (int, float)) and not isinstance(items, bool):
        items = [items]
    if not isinstance(items, (list, tuple)) or not items:
        return None
    element = typing.get_args(hint)[0] if typing.get_args(hint) else Any
    try:
        return tuple(_convert(item, element) for item in items)
    except (TypeError, ValueError):
        return None
