"""Reading back a lab this code stored, without validating it again.

The store only ever holds the JSON dump of a validated :class:`Topology` (``Lab.change`` and ``Lab.up``
validate before they write), stamped with ``MODEL_STAMP``: a digest of this package's source. Reading
such a document back through pydantic re-runs every validator on every one of a large lab's 200,000
security rules, about a second and a half for a result equal to what was dumped. ``construct`` builds
the same objects straight from the JSON values instead (what ``model_construct`` does, recursively).

Trust is narrow: a document is constructed only when its stamp is this code's (any change to the
models validates stored labs again) and every object holds exactly its model's fields; anything else
raises ``Untrusted`` and the caller validates as usual.
"""

from __future__ import annotations

import hashlib
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, Callable, Literal, Union

from pydantic import BaseModel


class Untrusted(Exception):
    """The document is not in the shape this code dumps: validate it instead."""


@cache
def model_stamp() -> str | None:
    """A digest of the models' source (this package), None when it cannot be read (no trust then)."""
    files = sorted(Path(__file__).parent.glob("*.py"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


_PLAIN = (str, int, bool, float, type(None), Any)
_set = object.__setattr__
Converter = Callable[[Any], Any] | None   # None: the JSON value is the field's value


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_plain(annotation) -> bool:
    """A JSON value as validation leaves it: str, int, bool, None, Literal, and lists, dicts and
    unions of those (a float field would take an int as a float: not plain)."""
    if annotation in _PLAIN or annotation in (list, dict):
        return annotation is not float
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return all(type(v) in (str, bool, type(None)) for v in typing.get_args(annotation))
    if origin in (list, dict, Union, types.UnionType):
        return all(_is_plain(a) for a in typing.get_args(annotation))
    return False


def _converter(annotation) -> Converter:
    if _is_plain(annotation):
        return None
    if _is_model(annotation):
        return lambda value, cls=annotation: construct(cls, value)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and len(args) == 1 and _is_model(args[0]):
        return lambda values, cls=args[0]: _construct_all(cls, values)
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _converter(next(a for a in args if a is not type(None)))
        if inner is not None:
            return lambda value: None if value is None else inner(value)
    raise TypeError(f"no trusted construction for {annotation!r}")


@cache
def _plan(cls: type[BaseModel]) -> tuple[frozenset[str], tuple[tuple[str, Callable], ...]]:
    """(the model's field names, the fields whose JSON value needs converting with their converter)."""
    if cls.__private_attributes__ or cls.__pydantic_post_init__ or cls.model_config.get("extra") == "allow":
        raise TypeError(f"{cls.__name__} keeps state outside its fields")
    converters = ((name, _converter(field.annotation)) for name, field in cls.model_fields.items())
    return frozenset(cls.model_fields), tuple((name, conv) for name, conv in converters if conv is not None)


def construct(cls: type[BaseModel], data) -> Any:
    """``cls`` built from ``data`` (a dict from ``json.loads``, taken over) as validating the dump of a
    valid ``cls`` gives it. Raises ``Untrusted`` when an object has other keys than its fields."""
    return _construct_all(cls, [data])[0]


def _construct_all(cls: type[BaseModel], values) -> list:
    """``construct`` of each item of a list (one loop: a large lab holds 200,000 rules)."""
    try:
        names, converters = _plan(cls)
    except TypeError as exc:
        raise Untrusted(str(exc)) from None
    if type(values) is not list:
        raise Untrusted(f"{cls.__name__}: a list expected, not {values!r:.200}")
    new, out = cls.__new__, []
    for data in values:
        if type(data) is not dict or data.keys() != names:
            raise Untrusted(f"{cls.__name__}: {data!r:.200}")
        for name, convert in converters:
            data[name] = convert(data[name])
        obj = new(cls)
        _set(obj, "__dict__", data)
        _set(obj, "__pydantic_fields_set__", set(names))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        out.append(obj)
    return out
