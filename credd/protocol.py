"""The control socket's wire format: one JSON object per line, each way.

Standard library only: `credctl` imports this module.

A request is ``{"op": NAME, ...fields}``. A reply is ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": {"code": N, "name": NAME, "message": TEXT}}`` with a
stable code from `credd.errors.Fault`. The `subscribe` op keeps the connection
open and sends one event object per line (``{"event": ...}``). docs/protocol.md
is the reference for people.
"""

from __future__ import annotations

from credd.errors import FAULT_NAMES, BadInputError, CreddError, Fault

try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # not CPython: the json package's pure-Python equivalents
    from json.encoder import encode_basestring_ascii
    from json.scanner import make_scanner

    make_encoder = None  # type: ignore[assignment,misc]

# `typing` is for the type checker only: importing it costs credctl ~4 ms of a ~50 ms start
# (bench/RESULTS.md #2). mypy treats any `TYPE_CHECKING` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# A request is a few hundred bytes; anything near this is a misbehaving client.
MAX_REQUEST_BYTES = 16 * 1024
# A client that sends nothing for this long is disconnected.
IDLE_TIMEOUT_SECONDS = 10.0

# The ops the local credentials endpoint answers (credd/daemon/endpoint.py), for `credctl exec`.
ENDPOINT_OPS = frozenset({"endpoint-token", "endpoint-revoke", "env-credentials"})
# An endpoint token's life when `endpoint-token` names none (`credctl exec --ttl`), and the most.
TOKEN_TTL_DEFAULT_SECONDS = 12 * 3600
TOKEN_TTL_MAX_SECONDS = 7 * 24 * 3600

OPS = frozenset(
    {
        "status",
        "token",
        "code-target",
        "refresh",
        "reload",
        "rotate",
        "credential-process",
        "subscribe",
        "ping",
    }
    | ENDPOINT_OPS
)

_DIGITS = frozenset("0123456789")


def validate_code(code: object) -> str:
    """Return `code` when it is exactly six ASCII digits, else raise BadInputError(BAD_CODE).

    The message never repeats what was given: a near-miss may still be a live code.
    """
    # SPEC.md: exactly six ASCII digits. str.isdigit() and int() accept other scripts.
    if not isinstance(code, str) or len(code) != 6 or not _DIGITS.issuperset(code):
        raise BadInputError("a code is exactly 6 digits (0-9)", fault=Fault.BAD_CODE)
    return code


# The wire format is JSON, but `credctl` does not import the `json` package: it imports
# `re`, and `re` imports `enum`, ~13 ms of a ~25 ms start (bench/RESULTS.md #2). These
# two functions are json.dumps and json.loads built on the same C accelerator `json` uses;
# tests/test_protocol.py checks them against `json` on generated values and texts.


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line of compact ASCII JSON: byte for byte what
    `json.dumps(message, separators=(",", ":"), allow_nan=False)` gives: NaN and the
    infinities, which JSON does not have, are refused (ValueError)."""
    try:
        return ("".join(_encode(message, 0)) + "\n").encode("ascii")
    except ValueError as error:  # the encoder's "Out of range float values ..."
        raise ValueError(f"{error}: a float with no JSON form") from None


def _no_json_form(value: object) -> object:
    raise TypeError(f"{type(value).__name__} has no JSON form")


# json.dumps's own C encoder (`_json.make_encoder`), set as json.dumps sets it for these
# arguments: a status of 100 profiles is encoded in a fifth of the time the recursive
# Python encoder took, which was 40 % of the daemon's work for it (bench/ #2).
_encode: Any
if make_encoder is not None:
    _encode = make_encoder(
        {}, _no_json_form, encode_basestring_ascii, None, ":", ",", False, False, False
    )
else:  # pragma: no cover - not CPython
    import json

    _encode = json.JSONEncoder(
        separators=(",", ":"), allow_nan=False, default=_no_json_form
    ).iterencode


class _Decoding:
    """What the JSON scanner reads from its decoder: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "NaN": float("nan"),
        "Infinity": float("inf"),
        "-Infinity": float("-inf"),
    }.__getitem__

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}  # the pure-Python scanner's key cache


# typeshed types the context as a scanner, which carries these same attributes.
_scan = make_scanner(_Decoding())  # type: ignore[arg-type]


def decode(line: bytes) -> Any:
    """The JSON value in a UTF-8 `line`, as `json.loads` gives it; ValueError if there is none.

    The scanner alone decodes every well-formed line. It cannot report errors without
    `json` loaded, so anything it does not finish cleanly goes to `json.loads`, whose
    error (a ValueError) names the position.
    """
    text = line.decode("utf-8").strip(" \t\n\r")
    try:
        value, end = _scan(text, 0)
    except Exception:  # any failure is judged again by json.loads below
        end = -1
    if end == len(text):
        return value
    import json  # only for malformed input: the slow import that names the error

    return json.loads(text)


def decode_request(line: bytes) -> dict[str, Any]:
    """Parse and check one request line; raise BadInputError with the right fault."""
    try:
        message = decode(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
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


def failure(fault: int, message: str) -> dict[str, Any]:
    """A failed reply with its stable code."""
    return {"ok": False, "error": {"code": fault, "name": FAULT_NAMES[fault], "message": message}}


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
