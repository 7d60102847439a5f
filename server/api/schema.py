"""Request and response shapes, declared once: they validate request bodies and generate the OpenAPI spec.

A ``Schema`` is a JSON object with typed ``Field``s. ``Schema.parse`` turns a decoded body into a dict of
validated values (defaults filled in) or raises ``ValidationFailed`` naming the offending field; the same
declarations render as JSON Schema for ``/api/openapi.json``, so the docs cannot drift from the code.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import attrs

from starq.worker_kit.errors import ValidationFailed

REQUIRED = object()
# The default of a field that is left out of the parsed body when it is not given (a PATCH: absent means "no
# change", which differs from an explicit null).
ABSENT = object()
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


# ``type`` as Field's annotations can name it (its own field ``type`` hides the builtin there).
_PythonType = type


@attrs.frozen
class Field:
    name: str
    type: str | tuple[str, ...] | None  # None: any JSON value; a tuple: any of those types
    default: Any = REQUIRED
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    items: Schema | Field | None = None
    max_items: int | None = None
    nullable: bool = False
    format: str | None = None  # a JSON Schema format, e.g. "date-time"; the handler checks it
    min_items: int | None = None
    pattern_hint: str | None = None  # what ``pattern`` stands for, in words, for the error message
    shape: Schema | None = None  # an object's own fields
    # The Python types a value may have, and whether a bool is one of them (bool is an int in Python, but true is
    # not a number in JSON): made once, as every item of a batch checks its fields.
    _types: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)
    _accepts: tuple[_PythonType, ...] = attrs.field(init=False, repr=False, eq=False)
    _accepts_bool: bool = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        types = () if self.type is None else self.type if isinstance(self.type, tuple) else (self.type,)
        object.__setattr__(self, "_types", types)
        object.__setattr__(self, "_accepts", tuple(t for name in types for t in _TYPES[name]))
        object.__setattr__(self, "_accepts_bool", "boolean" in types)

    def check(self, value: Any, path: str) -> Any:
        if value is None and self.nullable:
            return None
        if self.type == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema counts 3.0 as an integer, and some clients encode integers so
        if self._accepts and (
            not isinstance(value, self._accepts) or ((value is True or value is False) and not self._accepts_bool)
        ):
            raise ValidationFailed(f"{path} must be {' or '.join(_article(t) for t in self._types)}")
        if self.type == "number" and isinstance(value, float) and value != value:  # NaN
            raise ValidationFailed(f"{path} must be a number")
        if self.minimum is not None and value < self.minimum:
            raise ValidationFailed(f"{path} must be at least {_fmt(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ValidationFailed(f"{path} must be at most {_fmt(self.maximum)}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationFailed(f"{path} must be at most {self.max_length} characters long")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValidationFailed(
                f"{path} must be {self.pattern_hint}" if self.pattern_hint else f"{path} must match {self.pattern}"
            )
        if self.enum is not None and value not in self.enum:
            # An empty string in an enum stands for "none chosen" (``status=`` lists every job); it is no option.
            options = ", ".join(option for option in self.enum if option != "")
            raise ValidationFailed(f"{path} must be one of: {options}")
        if self.shape is not None:
            return self.shape.parse(value, path)
        if self.type == "array":
            if self.min_items is not None and len(value) < self.min_items:
                raise ValidationFailed(f"{path} must hold at least {self.min_items} item(s)")
            if self.max_items is not None and len(value) > self.max_items:
                raise ValidationFailed(f"{path} may hold at most {self.max_items} items")
            if self.items is not None:
                return [_check_item(self.items, item, f"{path}[{i}]") for i, item in enumerate(value)]
        return value

    def from_text(self, raw: str, path: str) -> Any:
        """A query-string value read as this field's type (then checked as a body value would be)."""
        try:
            if self.type == "integer":
                return int(raw)
            if self.type == "number":
                return float(raw)
        except ValueError:
            raise ValidationFailed(f"{path} must be {_article(str(self.type))}") from None
        if self.type == "boolean":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValidationFailed(f"{path} must be true or false")
            return raw.lower() in ("true", "1")
        return raw

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.type is not None:
            types = list(self.type) if isinstance(self.type, tuple) else [self.type]
            out["type"] = [*types, "null"] if self.nullable else types[0] if len(types) == 1 else types
        if self.description:
            out["description"] = self.description
        if self.default not in (REQUIRED, ABSENT) and (self.default is not None or self.nullable):
            out["default"] = self.default
        for key, value in (
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("maxLength", self.max_length),
            ("pattern", self.pattern),
            ("minItems", self.min_items),
            ("maxItems", self.max_items),
        ):
            if value is not None:
                out[key] = value
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.format is not None:
            out["format"] = self.format
        if self.items is not None:
            out["items"] = self.items.json_schema() if isinstance(self.items, Field) else {"$ref": self.items.ref}
        if self.shape is not None:
            nested = self.shape.json_schema()
            out["properties"] = nested["properties"]
            if "required" in nested:
                out["required"] = nested["required"]
        return out


@attrs.frozen
class Schema:
    name: str
    fields: tuple[Field, ...]
    description: str = ""
    # At least one of these fields must be present and not null (the handler checks it; the spec says it).
    one_of_required: tuple[str, ...] = ()
    # At most one of these fields may be present and not null (the handler checks it; the spec says it).
    exclusive: tuple[str, ...] = ()
    # What a body that gives none of the fields parses to (the required ones aside): copied, then the given
    # fields are checked over it. Precomputed because a batch submit parses its job shape a hundred times.
    _defaults: dict[str, Any] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        defaults = {f.name: f.default for f in self.fields if f.default is not REQUIRED and f.default is not ABSENT}
        object.__setattr__(self, "_defaults", defaults)

    @property
    def needs_body(self) -> bool:
        """Whether a request must send a body: a field is required (an empty body counts as ``{}``)."""
        return bool(self.one_of_required) or any(f.default is REQUIRED for f in self.fields)

    @property
    def ref(self) -> str:
        return f"#/components/schemas/{self.name}"

    def parse(self, data: Any, path: str = "") -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ValidationFailed(f"{path or 'the request body'} must be a JSON object")
        out = self._defaults.copy()
        for field in self.fields:
            name = field.name
            if name in data:
                # The field's path is only built when it is given: most of a job's fields are left out.
                out[name] = field.check(data[name], f"{path}.{name}" if path else name)
            elif field.default is REQUIRED:
                raise ValidationFailed(f"{path}.{name} is required" if path else f"{name} is required")
        return out

    def parse_query(self, query_string: bytes) -> dict[str, Any]:
        """A query string's parameters (the first of each name) read as the fields' types and validated."""
        given: dict[str, str] = {}
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            given.setdefault(name, value)
        return self.parse({f.name: f.from_text(given[f.name], f.name) for f in self.fields if f.name in given})

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
        }
        required = [f.name for f in self.fields if f.default is REQUIRED]
        if required:
            out["required"] = required
        if self.description:
            out["description"] = self.description
        if self.one_of_required:
            by_name = {f.name: f for f in self.fields}
            out["anyOf"] = [
                {"required": [name], "properties": {name: {"type": by_name[name].type}}}
                for name in self.one_of_required
            ]
        if self.exclusive:
            by_name = {f.name: f for f in self.fields}
            out["not"] = {
                "required": list(self.exclusive),
                "properties": {name: {"type": by_name[name].type} for name in self.exclusive},
            }
        return out


def _check_item(spec: Schema | Field, item: Any, path: str) -> Any:
    if isinstance(spec, Schema):
        return spec.parse(item, path)
    return spec.check(item, path)


def _article(type_name: str) -> str:
    return {"integer": "an integer", "object": "a JSON object", "array": "an array"}.get(type_name, f"a {type_name}")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
