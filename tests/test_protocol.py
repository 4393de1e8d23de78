"""The wire format: requests decoded and checked, replies with stable codes, codes validated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credd import protocol
from credd.errors import BadInputError, Fault

REPO = Path(__file__).resolve().parent.parent

# Every value JSON can carry: what credd's messages are made of.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


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
    assert caught.value.fault == Fault.BAD_CODE
    assert str(code) not in caught.value.message


@pytest.mark.parametrize(
    ("line", "fault"),
    [
        (b"not json\n", Fault.BAD_REQUEST),
        (b"\xff\xfe\x00garbage\n", Fault.BAD_REQUEST),
        (b"[1, 2]\n", Fault.BAD_REQUEST),
        (b'{"no_op": 1}\n', Fault.BAD_REQUEST),
        (b'{"op": "format-disk"}\n', Fault.UNKNOWN_OP),
        (b'{"op": "status"} {"op": "status"}\n', Fault.BAD_REQUEST),
        (b'{"op": "status\x01"}\n', Fault.BAD_REQUEST),
        (b"[" * 16000 + b"\n", Fault.BAD_REQUEST),  # deeper than Python recurses
    ],
)
def test_malformed_requests_get_their_fault(line: bytes, fault: int) -> None:
    """Garbage, non-objects, missing or unknown ops: a BadInputError with the right code."""
    with pytest.raises(BadInputError) as caught:
        protocol.decode_request(line)
    assert caught.value.fault == fault


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


@given(JSON_VALUES)
def test_encode_is_json_dumps_byte_for_byte(value: object) -> None:
    """The codec credctl uses without `json` writes exactly what `json.dumps` writes."""
    expected = json.dumps({"v": value}, separators=(",", ":"), ensure_ascii=True)
    assert protocol.encode({"v": value}) == expected.encode() + b"\n"


@given(JSON_VALUES, st.sampled_from([None, 0, 2]))
def test_decode_is_json_loads(value: object, indent: int | None) -> None:
    """Whatever JSON text holds a value, compact or indented, decodes as `json.loads` does."""
    text = json.dumps(value, indent=indent) + "\r\n"
    assert repr(protocol.decode(text.encode())) == repr(json.loads(text))


@given(st.text(alphabet='{}[]":,. \t-+0123456789eEabtrufnlsNIy\\\x01\u00e9', max_size=30))
def test_decode_refuses_what_json_loads_refuses(text: str) -> None:
    """On arbitrary text, decode gives json.loads's value, or a ValueError where it has none."""
    try:
        expected = repr(json.loads(text))
    except ValueError:
        with pytest.raises(ValueError):
            protocol.decode(text.encode())
    else:
        assert repr(protocol.decode(text.encode())) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_refuses_what_json_does_not_have(value: float) -> None:
    """NaN and the infinities have no JSON form: refused, never sent as `NaN`."""
    with pytest.raises(ValueError, match="no JSON form"):
        protocol.encode({"v": value})


def test_encode_writes_keys_and_refuses_values_as_json_dumps_does() -> None:
    """It is json.dumps's own C encoder: 1 as a key is "1"; a value with no JSON form is a
    TypeError that names its type, and shows nothing of it."""
    assert protocol.encode({1: "x"}) == b'{"1":"x"}\n'  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"^bytes has no JSON form$"):
        protocol.encode({"v": b"CANARYsecret"})


def test_decode_errors_need_no_json_loaded_beforehand() -> None:
    """In a fresh interpreter (as in credctl) malformed lines are ValueErrors, and valid
    ones are decoded without loading `json` at all."""
    probe = (
        "import sys; from credd import protocol\n"
        'assert protocol.decode(b\'{"ok": true, "result": [1, "x"]}\\n\')'
        " == {'ok': True, 'result': [1, 'x']}\n"
        "assert 'json' not in sys.modules\n"
        "for line in (b'\"abc', b'\"a\\x01\"', b'{\"a\": ', b'xyz', b'', b'[1,]', b'{} {}'):\n"
        "    try:\n"
        "        protocol.decode(line)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    raise AssertionError(line)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env={"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
