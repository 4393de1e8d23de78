"""The control socket's wire format: one JSON object per line, each way.

Standard library only: `credctl` imports this module.

A request is ``{"op": NAME, ...fields}``. A reply is ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": {"code": N, "name": NAME, "message": TEXT}}`` with a
stable code from `credd.errors.Fault`. The `subscribe` op keeps the connection
open and sends one event object per line (``{"event": ...}``). docs/protocol.md
is the reference for people.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from credd.errors import BadInputError, CreddError, Fault

# `typing` is for the type checker only: importing it costs credctl ~4 ms of a ~50 ms start
# (bench/RESULTS.md #2). mypy treats any `TYPE_CHECKING` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# A request is a few hundred bytes; anything near this is a misbehaving client.
MAX_REQUEST_BYTES = 16 * 1024
# A client that sends nothing for this long is disconnected.
IDLE_TIMEOUT_SECONDS = 10.0

OPS = frozenset({"status", "token", "refresh", "reload", "credential-process", "subscribe", "ping"})

# SPEC.md: codes are exactly six ASCII digits. Python's \d and int() accept other scripts.
_CODE = re.compile(r"[0-9]{6}")


def validate_code(code: object) -> str:
    """Return `code` when it is exactly six ASCII digits, else raise BadInputError(BAD_CODE).

    The message never repeats what was given: a near-miss may still be a live code.
    """
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise BadInputError("a code is exactly 6 digits (0-9)", fault=Fault.BAD_CODE)
    return code


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line of compact JSON (ASCII only, so any terminal shows it)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def decode_request(line: bytes) -> dict[str, Any]:
    """Parse and check one request line; raise BadInputError with the right fault."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadInputError("request is not a JSON line") from None
    if not isinstance(message, dict):
        raise BadInputError("request is not a JSON object")
    op = message.get("op")
    if not isinstance(op, str):
        raise BadInputError('request has no "op" string')
    if op not in OPS:
        raise BadInputError(f"unknown op {op[:40]!r}", fault=Fault.UNKNOWN_OP)
    return message


def ok(result: Any) -> dict[str, Any]:
    """A successful reply."""
    return {"ok": True, "result": result}


def failure(fault: Fault, message: str) -> dict[str, Any]:
    """A failed reply with its stable code."""
    return {"ok": False, "error": {"code": int(fault), "name": fault.name, "message": message}}


def failure_from(error: CreddError) -> dict[str, Any]:
    """A failed reply for a CreddError."""
    return failure(error.fault, error.message)


def optional_str(message: Mapping[str, Any], field: str) -> str | None:
    """A field that may be absent or null, else must be a string."""
    value = message.get(field)
    if value is None or isinstance(value, str):
        return value
    raise BadInputError(f'"{field}" must be a string')


def str_list(message: Mapping[str, Any], field: str) -> list[str]:
    """A field that may be absent, else must be a list of strings."""
    value = message.get(field, [])
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BadInputError(f'"{field}" must be a list of strings')
