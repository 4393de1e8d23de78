"""credctl with some of its hand-written shortcuts swapped for the library they replace.

    python bench/ctl_variant.py SWAPS CREDCTL-ARGS...

SWAPS is a comma-separated list (or `none`): `json` (the wire codec through the `json`
package instead of `_json`'s C functions), `argparse` (every command line through the
argparse parser built from the grammar table, not the fast reader of the same table),
`datetime` (credd's UTC times read by `datetime.fromisoformat`, not integer arithmetic),
`teardown` (the process ends through `sys.exit` and the interpreter's teardown, not
`exit_now`). `none` runs credctl through this same launcher with nothing swapped, ending
as bin/credctl does: the row to compare with, so that a swap's figure differs from it by
the swap alone (bench/scenarios.py, "shortcuts").
"""

from __future__ import annotations

import sys


def _swap_json() -> None:
    import json

    from credd import protocol

    def encode(message: object) -> bytes:
        return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()

    protocol.encode = encode  # type: ignore[assignment]
    protocol.decode = json.loads


def _swap_argparse() -> None:
    from credd.ctl import main

    main.fast_parse = lambda table, words: None  # type: ignore[assignment]


def _swap_datetime() -> None:
    from datetime import datetime

    from credd.ctl import main

    main.utc_seconds = lambda text: int(datetime.fromisoformat(text).timestamp())  # type: ignore[assignment]


SWAPS = {"json": _swap_json, "argparse": _swap_argparse, "datetime": _swap_datetime}


def main(argv: list[str]) -> None:
    swaps, *rest = argv
    names = swaps.split(",")
    for name in names:
        if name in SWAPS:
            SWAPS[name]()
        elif name not in ("none", "teardown"):
            raise SystemExit(f"ctl_variant.py: no swap named {name!r}")
    from credd.ctl.main import exit_now
    from credd.ctl.main import main as credctl

    status = credctl(rest)
    if "teardown" in names:
        sys.exit(status)
    exit_now(status)


if __name__ == "__main__":
    main(sys.argv[1:])
