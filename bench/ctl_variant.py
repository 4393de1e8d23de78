"""credctl with some of its hand-written shortcuts swapped for the library they replace.

    python bench/ctl_variant.py SWAPS CREDCTL-ARGS...

SWAPS is a comma-separated list (or `none`): `json` (the wire codec through the `json`
package instead of `_json`'s C functions), `argparse` (every command line through the
argparse parser built from the grammar table, not the fast reader of the same table),
`datetime` (credd's UTC times read by `datetime.fromisoformat`, not integer arithmetic).
`none` runs credctl through this same launcher with nothing swapped: the row to compare
with, so that a swap's figure differs from it by the swap alone (bench/scenarios.py,
"shortcuts").
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


def main(argv: list[str]) -> int:
    swaps, *rest = argv
    for name in swaps.split(","):
        if name != "none":
            SWAPS[name]()
    from credd.ctl.main import main as credctl

    return credctl(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
