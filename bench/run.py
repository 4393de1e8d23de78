"""`make bench`: credd's performance against its targets (issues 6 and 15), in bench/RESULTS.md.

Runs against moto's server on 127.0.0.1 as the local STS and IAM, and for #4 against
a stand-in that adds 30 ms to every STS call (tests/support/slow_sts.py); a GNOME
Keyring on a private D-Bus holds #3's long-term key. Everything runs in sandboxed
HOMEs, and whole processes are measured from outside. `BENCH_QUICK=1` (or
`--quick`) is a tiny smoke run whose figures mean nothing; `--out PATH` writes
the report elsewhere; `--only STEP` (repeatable) runs some steps, for working on one
target, and writes no report unless `--out` says where.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from report import write_report
from scenarios import Bench, Config
from stack import moto_server
from support.secret_service import missing_tools, secret_service
from support.slow_sts import slow_sts_server

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")


def main(argv: list[str] | None = None) -> int:
    """Run every measurement; write the report; exit 0 even when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (also BENCH_QUICK=1)")
    parser.add_argument("--out", type=Path, default=None, help=f"report path ({RESULTS.name})")
    steps = (
        ("floor", "floor"),
        ("#1 credctl token", "token"),
        ("#5 big credentials file", "big_file"),
        ("#2/#3 status and the shortcuts, then the idle daemon alone", "status_and_idle"),
        ("#8/#9 the endpoint and credctl exec", "endpoint"),
        ("#4 fan-out", "fanout"),
        ("#6 start to READY", "start_to_ready"),
        ("#7 10,000 renewals", "long_life"),
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[method for _, method in steps],
        help="run this step (repeatable; start_to_ready brings fanout, whose file it starts on)",
    )
    args = parser.parse_args(argv)
    if args.only:
        wanted = set(args.only) | ({"fanout"} if "start_to_ready" in args.only else set())
        steps = tuple(step for step in steps if step[1] in wanted)
    out = args.out if args.out is not None else (None if args.only else RESULTS)
    quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    config = Config.quick() if quick else Config()
    started = time.perf_counter()
    load_before = os.getloadavg()
    durations: dict[str, float] = {}
    missing = missing_tools()
    if missing:
        print(f"bench: missing {', '.join(missing)} (Debian packages; `make bench` installs them)")
        return 1
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as scratch:
        workdir = Path(scratch)
        with (
            moto_server(workdir / "moto.log") as moto,
            slow_sts_server(latency=config.latency) as slow,
            secret_service(workdir / "secret-service") as keyring,
        ):
            bench = Bench(config, moto, slow, keyring.env, workdir)
            try:
                fresh_file: Path | None = None
                for label, method in steps:
                    step_start = time.perf_counter()
                    print(f"bench: {label} ...", flush=True)
                    if method == "fanout":
                        fresh_file = bench.fanout()
                    elif method == "start_to_ready":
                        assert fresh_file is not None
                        bench.start_to_ready(fresh_file)
                    else:
                        getattr(bench, method)()
                    durations[label] = time.perf_counter() - step_start
                    print(f"bench: {label}: {durations[label]:.1f} s", flush=True)
                bench.explain()
            finally:
                bench.close()
    elapsed = time.perf_counter() - started
    bench.results.extra["seconds per step"] = {k: round(v, 1) for k, v in durations.items()}
    bench.results.extra["load average (1 min) before and after the run"] = (
        f"{load_before[0]:.2f}, {os.getloadavg()[0]:.2f} (other work on the machine"
        " skews the spread; medians are quoted for that reason)"
    )
    if out is not None:
        write_report(out, bench.results, config=config, quick=quick, elapsed=elapsed)
    for row in bench.results.rows:
        verdict = {True: "pass", False: "FAIL", None: "-"}[row.passed]
        print(f"#{row.number:<3} {verdict:4}  {row.figure}  vs {row.compared}  ratio {row.ratio}")
    print(f"bench: wrote {out} in {elapsed:.0f} s" if out else f"bench: {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
