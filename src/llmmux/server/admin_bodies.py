"""The admin API's request bodies as typed schemas: a field the API does not know is a 400.

Decoding into a schema (rather than passing the JSON object on as keyword arguments) keeps
a client from reaching parameters that are not part of the API: `{"name": "x", "now": 1}`
once created a key dated 1970.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from ..errors import MAX_NAME_CHARS, InvalidRequest

MAX_RATE = 2**53  # requests or tokens per minute: any real limit is far below, and it fits every store
MAX_BUDGET_USD = 1e12
MAX_MODEL_PATTERNS = 1000

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
Rate = Annotated[int, msgspec.Meta(gt=0, le=MAX_RATE)]
Budget = Annotated[float, msgspec.Meta(ge=0, le=MAX_BUDGET_USD)]
Models = (
    Annotated[list[Name], msgspec.Meta(max_length=MAX_MODEL_PATTERNS)]
    | Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS * MAX_MODEL_PATTERNS)]
)
AlertAt = Annotated[float, msgspec.Meta(gt=0, le=1)]
Moment = Annotated[str, msgspec.Meta(max_length=64)]
Tags = (
    Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=16)]
    | Annotated[str, msgspec.Meta(max_length=1024)]
)
Scopes = (
    Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=16)]
    | Annotated[str, msgspec.Meta(max_length=1024)]
)

_UNKNOWN = re.compile(r"unknown field `([^`]*)`")
_AT = re.compile(r" - at `\$\.?([^`]*)`")


class KeyBody(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /admin/keys` and `PATCH /admin/keys/{id}`: absent fields stay as they are, null clears a limit."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    budget: Budget | msgspec.UnsetType | None = msgspec.UNSET
    budget_period: str | msgspec.UnsetType = msgspec.UNSET
    rpm: Rate | msgspec.UnsetType | None = msgspec.UNSET
    tpm: Rate | msgspec.UnsetType | None = msgspec.UNSET
    models: Models | msgspec.UnsetType | None = msgspec.UNSET
    expires: Moment | msgspec.UnsetType | None = msgspec.UNSET
    scopes: Scopes | msgspec.UnsetType | None = msgspec.UNSET  # keys.SCOPES: "admin", "metrics"
    tags: Tags | msgspec.UnsetType | None = msgspec.UNSET  # added to every request of the key (llmmux.tags)
    end_user_limits: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET  # {rpm, budget} per end user
    team: Name | msgspec.UnsetType | None = msgspec.UNSET  # a team's id or name; null leaves the team
    block_free: bool | msgspec.UnsetType = msgspec.UNSET  # past the budget, refuse $0 models too
    alert_at: AlertAt | msgspec.UnsetType | None = msgspec.UNSET  # alert at this fraction of the budget


def decode_key_body(body: Any) -> KeyBody:
    """The body as a KeyBody; InvalidRequest naming the field otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest("Expected a JSON object.")
    try:
        return msgspec.convert(body, KeyBody)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: msgspec.ValidationError) -> InvalidRequest:
    text = str(exc)
    unknown = _UNKNOWN.search(text)
    if unknown:
        field = unknown.group(1)
        known = ", ".join(KeyBody.__struct_fields__)
        return InvalidRequest(
            f"Unknown field '{field[:64]}' (known: {known}).", param=field[:64], code="unknown_parameter"
        )
    at = _AT.search(text)
    param = at.group(1).split("[")[0] if at else None
    return InvalidRequest(f"Invalid '{param}': {_AT.sub('', text)}." if param else f"{text}.", param=param)
