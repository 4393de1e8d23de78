"""What the daemon says of itself: `credctl status --json` and systemd's STATUS= line."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from credd.adapters.servicemanager import status_line
from credd.credentials import format_utc
from credd.states import State

if TYPE_CHECKING:
    from credd.daemon.core import Entry


def status(daemon: Mapping[str, Any], entries: Iterable[Entry]) -> dict[str, Any]:
    """The `credctl status --json` object (SPEC.md)."""
    return {
        "daemon": dict(daemon),
        "profiles": [
            {
                "name": e.profile.name,
                "kind": e.profile.kind.value,
                "state": e.state.value,
                "expires_at": utc(e.expires_at),
                "next_refresh_at": utc(e.next_refresh_at),
                "source_profile": e.profile.source_profile,
                "mfa_serial": e.profile.mfa_serial,
                "last_error": e.last_error,
            }
            for e in entries
        ],
    }


def status_text(entries: Iterable[Entry], started_at: datetime) -> str:
    """The one-line summary systemd shows: `3 fresh, 1 awaiting code: session-x`."""
    counts: dict[str, int] = {}
    waiting: list[Entry] = []
    for entry in entries:
        counts[entry.state.value] = counts.get(entry.state.value, 0) + 1
        if entry.state is State.AWAITING_CODE:
            waiting.append(entry)
    waiting.sort(key=lambda e: e.waiting_since or started_at)  # longest first
    return status_line(counts, [e.profile.name for e in waiting])


def utc(when: datetime | None) -> str | None:
    """A time as the wire carries it, or None."""
    return _utc_text(when) if when is not None else None


# `credctl status` of 100 profiles writes 200 times, each 2.6 us through strftime: a third
# of the daemon's part of the request (bench/ #2). The times stay the same from one
# status to the next until a renewal; a small cache answers them (about 100 KiB at most).
@functools.lru_cache(maxsize=512)
def _utc_text(when: datetime) -> str:
    return format_utc(when)
