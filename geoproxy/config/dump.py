"""A readable, stable text form of a ``Config``: what the parser understood.

Used by the golden tests (``tests/unit/cases/config/valid/*.expected``) and useful to answer
"what does geoproxy make of my file?". Rules:
1. JSON, keys in model field order, two-space indent.
2. A field equal to its model default is left out, so a dump shows what the file set (or
   inherited), not every default.
3. Locations are ``file:line`` with the file relative to ``base`` when given; enums are their
   HAProxy spelling; bytes are shown as text (latin-1); a condition term is its ACL's name,
   ``!``-prefixed when negated.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from typing import Any

from geoproxy.config.model import ConditionTerm, Config, Location


def dump(config: Config, base: str | None = None) -> str:
    """The JSON text of ``config``; paths relative to the directory ``base``."""
    return json.dumps(_value(config, base), indent=2, ensure_ascii=False) + "\n"


def _value(value: Any, base: str | None) -> Any:
    if isinstance(value, Location):
        return f"{_relative(value.file, base)}:{value.line}"
    if isinstance(value, ConditionTerm):
        return ("!" if value.negated else "") + value.test.name
    if isinstance(value, Config):
        data = _fields(value, base)
        data["path"] = _relative(value.path, base)
        data["warnings"] = [_relative_text(str(w), value.path, base) for w in value.warnings]
        return data
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value, base)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, tuple | list):
        return [_value(item, base) for item in value]
    return value


def _fields(value: Any, base: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if _is_default(field, item):
            continue
        data[field.name] = _value(item, base)
    return data


def _is_default(field: dataclasses.Field[Any], item: Any) -> bool:
    if field.default is not dataclasses.MISSING:
        return bool(item == field.default)
    if field.default_factory is not dataclasses.MISSING:
        return bool(item == field.default_factory())
    return False


def _relative(path: str, base: str | None) -> str:
    if base is None:
        return path
    return os.path.relpath(os.path.abspath(path), os.path.abspath(base))


def _relative_text(text: str, path: str, base: str | None) -> str:
    return text.replace(path, _relative(path, base)) if base is not None else text
