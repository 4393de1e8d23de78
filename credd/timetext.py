"""Times as people read them in credd's output. Standard library only.

The times on the socket are all in credd's one form `2026-11-26T08:00:00Z`
(docs/protocol.md); `utc_seconds` reads that form, and only that, with `datetime`.
It once did the calendar arithmetic by hand to spare credctl the import: measured
against the library in the bench (bench/RESULTS.md, "Shortcuts"), that saved
1.5 ms of a 30 ms `credctl status`, less than the spread between two runs, so the
library does it (issue 15).
"""

from __future__ import annotations

from datetime import datetime

_SECONDS_PER_DAY = 86400


def format_relative(seconds: float) -> str:
    """A span as people read it: `3h12m`, `45m`, `30s`; negative spans count as zero."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{whole}s"


def format_long(seconds: float) -> str:
    """A span that may be months long (a key's age): `89d23h` from two days up, else as
    `format_relative`."""
    whole = max(0, int(seconds))
    if whole < 2 * _SECONDS_PER_DAY:
        return format_relative(whole)
    days, rest = divmod(whole, _SECONDS_PER_DAY)
    hours = rest // 3600
    return f"{days}d{hours}h" if hours else f"{days}d"


def utc_seconds(text: str) -> int:
    """Seconds since 1970 of a UTC time in credd's form `2026-11-26T08:00:00Z`.

    ValueError for text not of that form.
    """
    if len(text) != 20 or text[4] + text[7] + text[10] + text[13] + text[16] + text[19] != "--T::Z":
        raise ValueError(f"not a UTC time of the form 2026-11-26T08:00:00Z: {text[:40]!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a valid UTC time: {text!r}") from None
    return int(moment.timestamp())
