"""Durations as the policy writes them (`12h`, `90m`, `1h30m`, `45s`, `90d`). Standard library only.

A duration is a string of days, hours, minutes and seconds, each at most once and
in that order (`1d12h`, `1h30m15s`), or a non-negative integer of seconds. Only ASCII
digits count: a Python `\\d` or a bare `int()` would accept "١٢h".
"""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?"
)

_SECONDS_PER = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> int:
    """Return the seconds that `value` stands for.

    Accepts `"12h"`, `"90m"`, `"1h30m"`, `"45s"`, `"1h30m15s"` or a
    non-negative integer. Raises ValueError with a reason a person can act on.
    Range checks (what STS allows) belong to the caller.
    """
    # bool is an int subclass: `duration: yes` must not mean one second.
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 12h, 90m, 1h30m or 45s, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative; a duration is 0 or more seconds")
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"must be a duration such as 12h, 90m, 1h30m or 45s, not {type(value).__name__}"
        )
    if value == "":
        raise ValueError("is empty; write a duration such as 12h, 90m, 1h30m or 45s")
    if value.isascii() and value.isdigit():
        raise ValueError(f"{value!r} has no unit; write {value}s, or an unquoted integer")
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{_quote(value)} is not a duration; write days, hours, minutes and seconds "
            "in that order, such as 90d, 12h, 90m, 1h30m or 45s"
        )
    return sum(int(match[unit]) * per for unit, per in _SECONDS_PER.items() if match[unit])


def format_duration(seconds: int) -> str:
    """Write `seconds` the way a policy would: `12h`, `1h30m`, `45s`, `0s`."""
    if seconds < 0:
        raise ValueError(f"{seconds} is negative; a duration is 0 or more seconds")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _quote(value: str) -> str:
    """Quote a value for a message, cut short so a pasted blob stays one readable line."""
    return repr(value if len(value) <= 40 else value[:40] + "...")
