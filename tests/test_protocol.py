"""The wire format: requests decoded and checked, replies with stable codes, codes validated."""

from __future__ import annotations

import pytest

from credd import protocol
from credd.errors import BadInputError, Fault


@pytest.mark.parametrize("code", ["000000", "123456", "999999"])
def test_six_ascii_digits_are_a_code(code: str) -> None:
    """Exactly six characters 0-9."""
    assert protocol.validate_code(code) == code


@pytest.mark.parametrize(
    "code",
    ["12345", "1234567", "١٢٣٤٥٦", "１２３４５６", "12345a", " 123456", "123456\n", None, 123456],
)
def test_anything_else_is_bad_code_and_is_not_echoed(code: object) -> None:
    """Non-ASCII digits (which \\d and int() accept), wrong lengths, other types: BAD_CODE."""
    with pytest.raises(BadInputError) as caught:
        protocol.validate_code(code)
    assert caught.value.fault is Fault.BAD_CODE
    assert str(code) not in caught.value.message


@pytest.mark.parametrize(
    ("line", "fault"),
    [
        (b"not json\n", Fault.BAD_REQUEST),
        (b"\xff\xfe\x00garbage\n", Fault.BAD_REQUEST),
        (b"[1, 2]\n", Fault.BAD_REQUEST),
        (b'{"no_op": 1}\n', Fault.BAD_REQUEST),
        (b'{"op": "format-disk"}\n', Fault.UNKNOWN_OP),
    ],
)
def test_malformed_requests_get_their_fault(line: bytes, fault: Fault) -> None:
    """Garbage, non-objects, missing or unknown ops: a BadInputError with the right code."""
    with pytest.raises(BadInputError) as caught:
        protocol.decode_request(line)
    assert caught.value.fault is fault


def test_replies_round_trip_as_one_ascii_line() -> None:
    """One JSON object per line, ASCII only, with the fault's number and name."""
    line = protocol.encode(protocol.failure(Fault.CODE_REJECTED, "AWS said no: é"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.isascii()
    assert b'"code":30' in line and b'"name":"CODE_REJECTED"' in line


def test_field_types_are_checked() -> None:
    """Optional strings and string lists refuse other types."""
    assert protocol.optional_str({"profile": None}, "profile") is None
    with pytest.raises(BadInputError):
        protocol.optional_str({"profile": 3}, "profile")
    assert protocol.str_list({}, "profiles") == []
    with pytest.raises(BadInputError):
        protocol.str_list({"profiles": "a"}, "profiles")
