"""The measurements of issue 6, one method each, sharing one local STS.

Every figure is a `Series` of whole-process samples unless its name says it was
measured inside a process. Commands that are compared are interleaved, round
by round (`harness.interleave`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import Run, Series, cpu_seconds, interleave, peak_rss_mib, run, vm_hwm_kib, vm_rss_kib
from stack import (
    AWS,
    AWS_MFA,
    CREDCTL,
    CREDD,
    KEY_ID,
    PYTHON,
    SECRET,
    Daemon,
    Home,
    Moto,
    RenameWatcher,
    chain_policy,
    iam_user,
    long_term_file,
    mfa_serial,
    session_name,
)
from support.slow_sts import SlowSts

from credd.adapters.pacing import CALLS_PER_SECOND, DEFAULT_CONCURRENCY
from credd.files.writer import SETTLE_SECONDS

HELPERS = str(Path(__file__).with_name("helpers.py"))
CTL_VARIANT = str(Path(__file__).with_name("ctl_variant.py"))
# What a daemon with every feature holds before it does anything (#3's floors): credd's
# daemon modules and every library they load (botocore, not boto3: credd never imports
# boto3), with one STS client; then with the IAM client key rotation reads ages through.
DAEMON_LOADS = (
    "import credd.daemon.run, h11, jeepney.io.blocking, keyring.core, botocore.session;"
    " aws = botocore.session.Session(); aws.create_client('sts')"
)
DAEMON_LOADS_IAM = f"{DAEMON_LOADS}; aws.create_client('iam')"
LOADS_RSS = 'python3 -c "import <credd\'s daemon and its libraries>; an STS client" peak RSS'
LOADS_IAM_RSS = (
    'python3 -c "import <credd\'s daemon and its libraries>; an STS and an IAM client" peak RSS'
)
MIB = 1024.0
# The floor, measured in the same run.
FLOOR_PASS = "python3 -c pass"
FLOOR_STS = "boto3 GetSessionToken round trip (in process, warm)"
FLOOR_FSYNC = "fsync of a 4 KiB file (in process)"
FLOOR = (FLOOR_PASS, FLOOR_STS, FLOOR_FSYNC)
# credctl's start without its work, ending as bin/credctl ends (no teardown), so that
# `credctl status` less this is the request and the table alone (#2's note).
CTL_IMPORTS = "from credd.ctl.main import exit_now; exit_now(0)"
BARE_RSS = "python3 -c \"import boto3; boto3.client('sts')\" peak RSS"


@dataclass(frozen=True)
class Config:
    """How big and how long. `quick()` is the smoke-test size."""

    reps: int = 20  # of each timed command
    fanout_reps: int = 20  # rounds of credd in #4 (each: 1,000 renewals)
    # Rounds of the serial loop against the 30 ms stand-in: each takes 1,000 x 30 ms and
    # varies by well under 1 % (its calls wait on a timer), so 3 tell its median.
    fanout_loop_reps: int = 3
    moto_fanout_reps: int = 5  # rounds of each side of #4 against moto (the second row)
    fanout_sessions: int = 10
    fanout_roles: int = 99
    latency: float = 0.030  # what the stand-in adds to every STS call
    endpoint_fetches: int = 10  # per process, in each of `reps` processes (#8)
    idle_profiles: tuple[int, int] = (10, 9)  # sessions x roles: 10 + 90 = 100 profiles
    idle_seconds: float = 120.0
    settle_seconds: float = 5.0
    file_sections: int = 10_000
    start_sessions: int = 10
    start_roles: int = 99
    long_life_roles: int = 100
    long_life_renewals: int = 10_000

    @staticmethod
    def quick() -> Config:
        """A tiny run that only shows everything works (no figure means anything)."""
        return Config(
            reps=2,
            fanout_reps=1,
            fanout_loop_reps=1,
            moto_fanout_reps=1,
            endpoint_fetches=2,
            fanout_sessions=2,
            fanout_roles=4,
            idle_profiles=(2, 3),
            idle_seconds=2.0,
            settle_seconds=0.5,
            file_sections=200,
            start_sessions=2,
            start_roles=4,
            long_life_roles=5,
            long_life_renewals=20,
        )


@dataclass
class Row:
    """One line of the targets table."""

    number: str
    what: str
    figure: str
    compared: str
    ratio: str
    target: str
    passed: bool | None  # None: no target (the floor)


@dataclass
class Results:
    """Everything measured, for the report."""

    series: dict[str, Series] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    # (swap, ms saved by the shortcut, that saving over `credctl status`, figures)
    shortcuts: list[tuple[str, float, float, str, str]] = field(default_factory=list)

    def add(self, name: str, unit: str) -> Series:
        """A new series (its name is its key in the report)."""
        series = Series(name, unit)
        self.series[name] = series
        return series


class _Codes:
    """Six-digit codes that never repeat within a run (credd rightly refuses nothing here)."""

    def __init__(self) -> None:
        self._next = 100000

    def __call__(self) -> str:
        self._next += 1
        return f"{self._next:06d}"


class Bench:
    """Runs the measurements against one moto, in HOMEs under `workdir`."""

    def __init__(
        self, config: Config, moto: Moto, slow: SlowSts, keyring: dict[str, str], workdir: Path
    ) -> None:
        self.config = config
        self.moto = moto
        self.slow = slow  # the 30 ms STS stand-in of #4
        self.keyring = keyring  # the environment that reaches a Secret Service (#3)
        self.workdir = workdir
        self.results = Results()
        self.code = _Codes()
        self._homes: list[Home] = []
        self._daemons: list[Daemon] = []

    # ------------------------------------------------------------------ plumbing

    def home(self, name: str, sts_url: str | None = None, **extra: str) -> Home:
        """A fresh sandboxed HOME, on moto unless `sts_url` says otherwise."""
        home = Home(self.workdir / name, sts_url or self.moto.url, extra)
        self._homes.append(home)
        return home

    def daemon(self, home: Home) -> Daemon:
        """A daemon object for `home` (not started)."""
        daemon = Daemon(home, self.workdir / f"credd-{len(self._daemons)}.log")
        self._daemons.append(daemon)
        return daemon

    def close(self) -> None:
        """Stop every daemon we started (by pid) and remove socket directories."""
        for daemon in self._daemons:
            daemon.stop()
        for home in self._homes:
            home.cleanup()

    def ctl(self, home: Home, *args: str) -> Run:
        """One credctl process, timed."""
        return run([CREDCTL, *args], env=home.env)

    def status(self, home: Home) -> dict[str, str]:
        """Every profile's state, from `credctl status --json`."""
        done = run([CREDCTL, "status", "--json"], env=home.env)
        return {p["name"]: p["state"] for p in json.loads(done.stdout)["profiles"]}

    def wait_all_fresh(self, home: Home, count: int, timeout: float = 120.0) -> None:
        """Poll (slowly: status of many profiles is not free) until `count` profiles are fresh."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.status(home)
            if len(states) == count and all(s == "fresh" for s in states.values()):
                return
            time.sleep(0.25)
        bad = {k: v for k, v in states.items() if v != "fresh"}
        raise RuntimeError(f"not all fresh after {timeout}s: {list(bad.items())[:5]}")

    def wait_key_age(self, home: Home, timeout: float = 60.0) -> None:
        """Poll until the daemon has asked IAM the long-term key's age (rotation is on)."""
        deadline = time.monotonic() + timeout
        keys: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            done = run([CREDCTL, "status", "--json"], env=home.env)
            keys = json.loads(done.stdout).get("keys", [])
            if keys and all(key.get("created_at") for key in keys):
                return
            time.sleep(0.25)
        raise RuntimeError(f"no key age after {timeout}s: {keys}")

    def feed_all(self, home: Home, sessions: int) -> None:
        """One code to each MFA session, one after another."""
        for s in range(sessions):
            self.ctl(home, "token", self.code(), "--profile", session_name(s))

    # ------------------------------------------------------------------ the floor

    def floor(self) -> None:
        """`python3 -c pass`, one in-process GetSessionToken round trip, one 4 KiB fsync."""
        reps = self.config.reps
        home = self.home("floor")
        home.write(credentials=long_term_file())
        done = run([PYTHON, HELPERS, "sts-roundtrip", str(reps)], env=home.env)
        answer = json.loads(done.stdout)
        roundtrip = self.results.add(FLOOR_STS, "ms")
        roundtrip.values = [t * 1000 for t in answer["warm"]]
        self.results.extra["boto3 first call, client creation included (ms)"] = (
            answer["first"] * 1000
        )
        fsync = self.results.add(FLOOR_FSYNC, "ms")
        target = home.root / "fsync-probe"
        block = os.urandom(4096)
        for _ in range(reps):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, block)
                start = time.perf_counter()
                os.fsync(fd)
                fsync.values.append((time.perf_counter() - start) * 1000)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ #1

    def token(self) -> None:
        """#1: `credctl token CODE` against the AWS CLI and aws-mfa, all on the same STS."""
        home = self.home("token")
        home.write(policy=chain_policy(1, 0), credentials=long_term_file())
        daemon = self.daemon(home)
        daemon.start()
        cli_home = self.home("awscli")
        cli_home.write(credentials=long_term_file())
        mfa_home = self.home("awsmfa")
        mfa_home.write(
            credentials=(
                "[default-long-term]\n"
                f"aws_access_key_id = {KEY_ID}\n"
                f"aws_secret_access_key = {SECRET}\n"
                f"aws_mfa_device = {mfa_serial(0)}\n"
            )
        )
        have_aws_mfa = Path(AWS_MFA).exists()
        ours = self.results.add("credctl token CODE", "ms")
        cli = self.results.add("aws sts get-session-token (AWS CLI v1)", "ms")
        mfa = self.results.add("aws-mfa --force", "ms") if have_aws_mfa else None
        seen: set[str] = set()

        def credctl_token() -> None:
            done = self.ctl(home, "token", self.code())
            token = _session_token(home.credentials.read_text(), session_name(0))
            if "renewed" not in done.stdout or token in seen:
                raise RuntimeError(f"credctl token did not renew: {done.stdout!r}")
            seen.add(token)
            ours.values.append(done.wall * 1000)

        def aws_cli() -> None:
            done = run(_aws_cli(self.code()), env=cli_home.env)
            if "SessionToken" not in done.stdout:
                raise RuntimeError("aws sts get-session-token printed no credentials")
            cli.values.append(done.wall * 1000)

        def aws_mfa() -> None:
            done = run([AWS_MFA, "--force"], env=mfa_home.env, stdin=self.code() + "\n")
            if "aws_session_token" not in (mfa_home.credentials.read_text()):
                raise RuntimeError("aws-mfa wrote no session")
            assert mfa is not None
            mfa.values.append(done.wall * 1000)

        steps = {"credctl": credctl_token, "awscli": aws_cli}
        if have_aws_mfa:
            steps["aws-mfa"] = aws_mfa
        # One untimed round first: the code is fed while the profile waits, the CLIs warm up.
        self.ctl(home, "token", self.code())
        run(_aws_cli(self.code()), env=cli_home.env)
        if have_aws_mfa:
            run([AWS_MFA, "--force"], env=mfa_home.env, stdin=self.code() + "\n")
        interleave(self.config.reps, steps)
        daemon.stop()
        self.results.rows.append(
            _ratio_row("1a", "`credctl token CODE` vs AWS CLI", ours, cli, "≤ 0.08", digits=3)
        )
        if mfa is None:
            self.results.rows.append(
                Row(
                    "1b",
                    "`credctl token CODE` vs `aws-mfa --force`",
                    _ms(ours),
                    "not measured: aws-mfa is not installed (pip install -e '.[bench]')",
                    "-",
                    "≤ 0.12",
                    None,
                )
            )
            return
        self.results.rows.append(
            _ratio_row(
                "1b", "`credctl token CODE` vs `aws-mfa --force`", ours, mfa, "≤ 0.12", digits=3
            )
        )

    # ------------------------------------------------------------------ #2 and #3

    def status_and_idle(self) -> None:
        """#2 `credctl status` on 100 profiles, the shortcuts, then #3 that daemon idle, alone.

        The daemon has every feature of the product present: its long-term key lives in the
        keyring (moved there by `credd keys import`) and is rotated on `rotate_every` (IAM
        knows the key, so the daemon reads its age), and its local endpoint listens (one
        `credctl exec` asked for it).
        """
        sessions, roles = self.config.idle_profiles
        count = sessions * (roles + 1)
        home, daemon = self.idle_daemon("idle", keys_in_keyring=True, **self.keyring)
        # The profiles' table: a header and a line each (the source keys' table follows).
        listing = self.ctl(home, "status").stdout
        lines = listing.split("\n\n")[0].count("\n") + 1
        if lines != count + 1:
            raise RuntimeError(f"credctl status: {lines} lines for {count} profiles:\n{listing}")

        status = self.results.add(f"credctl status ({count} profiles)", "ms")
        short = self.results.add(f"credctl status --short ({count} profiles)", "ms")
        floor = self.results.add(FLOOR_PASS, "ms")
        bare = self.results.add(BARE_RSS, "MiB")
        loads = self.results.add(LOADS_RSS, "MiB")
        loads_iam = self.results.add(LOADS_IAM_RSS, "MiB")
        bare_import = self.results.add('python3 -c "import boto3"', "ms")
        # credctl's start without its work: how much of `credctl status` is imports.
        imports = self.results.add(f'python3 -c "{CTL_IMPORTS}"', "ms")
        interleave(
            self.config.reps,
            {
                "status": lambda: status.values.append(self.ctl(home, "status").wall * 1000),
                "short": lambda: short.values.append(
                    self.ctl(home, "status", "--short").wall * 1000
                ),
                "pass": lambda: floor.values.append(
                    run([PYTHON, "-c", "pass"], env=home.env).wall * 1000
                ),
                "bare": lambda: bare.values.append(
                    peak_rss_mib(PYTHON, "import boto3; boto3.client('sts')", env=home.env)
                ),
                "loads": lambda: loads.values.append(
                    peak_rss_mib(PYTHON, DAEMON_LOADS, env=home.env)
                ),
                "loads_iam": lambda: loads_iam.values.append(
                    peak_rss_mib(PYTHON, DAEMON_LOADS_IAM, env=home.env)
                ),
                "import": lambda: bare_import.values.append(
                    run([PYTHON, "-c", "import boto3"], env=home.env).wall * 1000
                ),
                # -P: the installed credd, not the checkout in the current directory.
                "imports": lambda: imports.values.append(
                    run([PYTHON, "-P", "-c", CTL_IMPORTS], env=home.env).wall * 1000
                ),
            },
        )
        for number, series, what in (
            ("2a", status, "`credctl status`"),
            ("2b", short, "`credctl status --short`"),
        ):
            self.results.rows.append(
                _ratio_row(
                    number,
                    f"{what}, installed command, daemon holding {count} profiles",
                    series,
                    floor,
                    "≤ 1.5",
                )
            )
        self.shortcuts(home, status)
        # The first age check comes with the first heartbeat, during the runs above.
        self.wait_key_age(home)

        # #3: nothing else runs now. Settle, then watch RSS and CPU.
        time.sleep(self.config.settle_seconds)
        rss_start = vm_rss_kib(daemon.pid) / MIB
        cpu_start = cpu_seconds(daemon.pid)
        clock_start = time.monotonic()
        time.sleep(self.config.idle_seconds)
        idle = time.monotonic() - clock_start
        cpu = cpu_seconds(daemon.pid) - cpu_start
        rss_end = vm_rss_kib(daemon.pid) / MIB
        hwm = vm_hwm_kib(daemon.pid) / MIB
        cryptography = _loads_cryptography(daemon.pid)
        daemon.stop()
        rss = max(rss_start, rss_end)
        per_hour = cpu * 3600 / idle
        self.results.extra["idle daemon"] = {
            "profiles": count,
            "RSS after settling (MiB)": round(rss_start, 1),
            "RSS at the end of the idle period (MiB)": round(rss_end, 1),
            "peak RSS, VmHWM (MiB)": round(hwm, 1),
            "idle period (s)": round(idle, 1),
            "CPU during it (s)": round(cpu, 3),
            "credd's daemon and libraries with an STS client, nothing running, over the bare"
            " client": round(loads.median / bare.median, 2),
            "the same with the IAM client too": round(loads_iam.median / bare.median, 2),
            "cryptography (SecretStorage's) loaded": "yes" if cryptography else "no",
        }
        self.results.rows.append(
            Row(
                "3a",
                f"idle daemon, {count} profiles, key in the keyring, rotation and endpoint"
                " on: RSS after settling",
                f"{rss:.1f} MiB",
                f"{bare.median:.1f} MiB (peak, median; min {bare.low:.1f}, max {bare.high:.1f})",
                f"{rss / bare.median:.2f}",
                "≤ 1.1",
                rss / bare.median <= 1.1,
            )
        )
        self.results.rows.append(
            Row(
                "3b",
                f"idle daemon: CPU over {idle:.0f} s idle, scaled to an hour",
                f"{per_hour:.2f} CPU-s/h ({cpu:.3f} s measured)",
                "-",
                "-",
                "≤ 1 CPU-s/h",
                per_hour <= 1.0,
            )
        )
        self.results.extra["idle daemon, key in the file, keyring's null backend"] = (
            self.idle_without_secret_service()
        )

    def idle_daemon(self, name: str, *, keys_in_keyring: bool, **env: str) -> tuple[Home, Daemon]:
        """#3's daemon, started: `idle_profiles` profiles with every code fed and all fresh,
        rotation on (an IAM user in moto knows the key, so its age is asked) and the
        endpoint listening (one `credctl exec` asked for it). With `keys_in_keyring`, the
        long-term key is moved into the keyring by `credd keys import` first."""
        sessions, roles = self.config.idle_profiles
        home = self.home(name, **env)
        key_id, secret = iam_user(self.moto.url, f"bench-{name}")
        home.write(
            policy=chain_policy(sessions, roles, rotate_every="90d"),
            credentials=long_term_file(key_id, secret),
        )
        if keys_in_keyring:
            run([CREDD, "keys", "import", "default"], env=home.env)
            if secret in home.credentials.read_text():
                raise RuntimeError("credd keys import left the secret in the credentials file")
        daemon = self.daemon(home)
        daemon.start()
        self.feed_all(home, sessions)
        self.wait_all_fresh(home, sessions * (roles + 1))
        run([CREDCTL, "exec", session_name(0), "--", "true"], env=home.env)
        return home, daemon

    def idle_without_secret_service(self) -> dict[str, float]:
        """#3's daemon again, but with its key in the file and keyring's null backend: what
        speaking to the Secret Service (jeepney, and the calls) costs its RSS.

        Untimed, one round: the same policy (rotation on, so IAM is asked the key's age)
        and the endpoint listening; only the keyring differs.
        """
        home, daemon = self.idle_daemon(
            "idle-file",
            keys_in_keyring=False,
            PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        )
        self.wait_key_age(home)
        time.sleep(self.config.settle_seconds)
        rss = vm_rss_kib(daemon.pid) / MIB
        cryptography = _loads_cryptography(daemon.pid)
        daemon.stop()
        if cryptography:
            raise RuntimeError("keyring's null backend still loaded cryptography")
        return {"RSS after settling (MiB)": round(rss, 1)}

    # ------------------------------------------------------------------ shortcuts

    def shortcuts(self, home: Home, shipped: Series) -> None:
        """credctl's hand-written shortcuts, each against the library it replaces (issue 15).

        `credctl status` on the #2 daemon, through bench/ctl_variant.py: once as shipped
        and once per shortcut swapped for its library, all through the same launcher.
        """
        variants = {
            name: self.results.add(f"credctl status via ctl_variant.py, {label}", "ms")
            for name, label in (
                ("none", "as shipped"),
                ("json", "json package for the wire codec"),
                ("argparse", "argparse for every command line"),
                ("datetime", "datetime for UTC times"),
                ("json,argparse,datetime", "all three libraries"),
                ("teardown", "the interpreter's teardown at exit"),
            )
        }
        interleave(
            self.config.reps,
            {
                name: (
                    lambda name=name: variants[name].values.append(
                        run([PYTHON, CTL_VARIANT, name, "status"], env=home.env).wall * 1000
                    )
                )
                for name in variants
            },
        )
        base = variants["none"]
        for name, series in variants.items():
            if name == "none":
                continue
            saving = series.median - base.median
            self.results.shortcuts.append(
                (name, saving, saving / shipped.median, _ms(series), _ms(base))
            )

    # ------------------------------------------------------------------ #4

    def fanout(self) -> Path:
        """#4: codes fed to N sessions until every chained role is fresh, vs a serial loop.

        First against the stand-in that adds `latency` to every call and serves calls at
        once (tests/support/slow_sts.py), as AWS's network would; then against moto, the
        second row, where moto's own CPU bounds every client. Returns the credentials file
        of the last stand-in round (every profile fresh), for #6.
        """
        cfg = self.config
        sessions, roles = cfg.fanout_sessions, cfg.fanout_roles
        count = sessions * (roles + 1)
        ms = f"{cfg.latency * 1000:.0f} ms"
        home = self.home("fanout", self.slow.url)
        home.write(policy=chain_policy(sessions, roles))
        ours = self.results.add(f"credd: {sessions} codes in to {count} fresh, {ms} STS", "s")
        rewrites = self.results.add("credentials-file rewrites during it", "rewrites")
        credd_cpu = self.results.add(f"credd's own CPU during a round, {ms} STS", "s")
        standin_cpu = self.results.add("the stand-in's own CPU during a credd round", "s")
        loop = self.results.add(
            f"plain boto3 loop, {count} calls in a row, {ms} STS (in process)", "s"
        )
        loop_cpu = self.results.add(f"the loop's own CPU for its calls, {ms} STS", "s")
        most = self.results.add("calls the stand-in held at once, most", "calls")

        def credd_round() -> None:
            home.write(credentials=long_term_file())
            daemon = self.daemon(home)
            daemon.start()
            self.slow.stats()
            cpu = cpu_seconds(self.slow.pid), cpu_seconds(daemon.pid)
            seconds, renames = self._fanout_round(home, sessions, count)
            standin_cpu.values.append(cpu_seconds(self.slow.pid) - cpu[0])
            credd_cpu.values.append(cpu_seconds(daemon.pid) - cpu[1])
            calls, held = self.slow.stats()
            states = self.status(home)
            daemon.stop()
            if len(states) != count or any(s != "fresh" for s in states.values()):
                raise RuntimeError("the file was complete but not every profile is fresh")
            if calls != count:
                raise RuntimeError(f"credd made {calls} STS calls for {count} profiles")
            ours.values.append(seconds)
            rewrites.values.append(renames)
            most.values.append(held)

        def serial_round() -> None:
            done = run([PYTHON, HELPERS, "serial-loop", str(sessions), str(roles)], env=home.env)
            answer = json.loads(done.stdout)
            if answer["calls"] != count:
                raise RuntimeError(f"the loop made {answer['calls']} calls")
            loop.values.append(answer["seconds"])
            loop_cpu.values.append(answer["cpu"])

        interleave(cfg.fanout_loop_reps, {"credd": credd_round, "loop": serial_round})
        for _ in range(cfg.fanout_reps - cfg.fanout_loop_reps):
            credd_round()
        ratio = ours.median / loop.median
        network = count * cfg.latency / DEFAULT_CONCURRENCY
        paced = count / CALLS_PER_SECOND
        floor = max(network, paced)
        self.results.extra[f"#4 floor against the {ms} stand-in"] = {
            f"{count} x {ms} / {DEFAULT_CONCURRENCY} calls at once (s)": round(network, 2),
            f"{count} calls at credd's {CALLS_PER_SECOND:.0f} a second at most (s)": round(
                paced, 2
            ),
            "credd's time over the higher of the two": round(ours.median / floor, 2),
            "credd's own CPU per round, median (s)": round(credd_cpu.median, 2),
            "the stand-in's CPU per round, median (s)": round(standin_cpu.median, 3),
            "the stand-in's CPU over credd's": round(standin_cpu.median / credd_cpu.median, 3),
        }
        self.results.rows.append(
            Row(
                "4a",
                f"{count} profiles ({sessions} sessions × {roles} roles): codes in to all"
                f" fresh, every STS call {ms}",
                _s(ours),
                _s(loop),
                f"{ratio:.3f} (floor {floor:.2f} s: {floor / loop.median:.3f})",
                "≤ 0.10",
                ratio <= 0.10,
            )
        )
        worst = rewrites.high
        self.results.rows.append(
            Row(
                "4b",
                f"credentials-file rewrites during those {count} renewals",
                f"{rewrites.median:.0f} (min {rewrites.low:.0f}, max {worst:.0f})",
                f"{count} renewals",
                f"1 per {count / worst:.0f} (worst round)",
                "≤ 1 per 20",
                worst * 20 <= count,
            )
        )
        fresh_file = self.workdir / "fanout-fresh-credentials"
        fresh_file.write_bytes(home.credentials.read_bytes())
        self.fanout_moto()
        return fresh_file

    def fanout_moto(self) -> None:
        """#4's second row: the same fan-out against moto, which spends its own CPU per call."""
        cfg = self.config
        sessions, roles = cfg.fanout_sessions, cfg.fanout_roles
        count = sessions * (roles + 1)
        home = self.home("fanout-moto")
        home.write(policy=chain_policy(sessions, roles))
        ours = self.results.add(f"credd: {sessions} codes in to {count} fresh, moto", "s")
        loop = self.results.add(f"plain boto3 loop, {count} calls in a row, moto (in process)", "s")
        moto_ours = self.results.add("moto's own CPU during a credd round", "s")
        moto_loop = self.results.add("moto's own CPU during a loop round", "s")

        def credd_round() -> None:
            self.moto.reset()
            home.write(credentials=long_term_file())
            daemon = self.daemon(home)
            daemon.start()
            moto_cpu = cpu_seconds(self.moto.proc.pid)
            seconds, _ = self._fanout_round(home, sessions, count)
            moto_ours.values.append(cpu_seconds(self.moto.proc.pid) - moto_cpu)
            daemon.stop()
            ours.values.append(seconds)

        def serial_round() -> None:
            self.moto.reset()
            moto_cpu = cpu_seconds(self.moto.proc.pid)
            done = run([PYTHON, HELPERS, "serial-loop", str(sessions), str(roles)], env=home.env)
            moto_loop.values.append(cpu_seconds(self.moto.proc.pid) - moto_cpu)
            loop.values.append(json.loads(done.stdout)["seconds"])

        interleave(cfg.moto_fanout_reps, {"credd": credd_round, "loop": serial_round})
        best = moto_ours.median / loop.median
        self.results.extra["#4 against moto"] = {
            "moto CPU per credd round, median (s)": round(moto_ours.median, 2),
            "moto CPU per loop round, median (s)": round(moto_loop.median, 2),
            "best ratio any client could reach (moto CPU for credd's calls / loop)": round(best, 2),
            "credd's time over moto's CPU for its calls": round(ours.median / moto_ours.median, 2),
        }
        self.results.rows.append(
            Row(
                "4c",
                f"the same {count} profiles against moto (one interpreter: it measures moto)",
                _s(ours),
                _s(loop),
                f"{ours.median / loop.median:.2f} (moto's CPU alone: {best:.2f})",
                "-",
                None,
            )
        )

    def _fanout_round(self, home: Home, sessions: int, count: int) -> tuple[float, int]:
        """Feed every session its code at once; seconds until the file holds all `count`."""
        watcher = RenameWatcher(home.credentials)
        try:
            start = time.perf_counter()
            feeders = [
                subprocess.Popen(
                    [CREDCTL, "token", self.code(), "--profile", session_name(s)],
                    env=home.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for s in range(sessions)
            ]
            seen = 0
            done_at: float | None = None
            deadline = time.monotonic() + 300
            while done_at is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("the fan-out did not complete in 300 s")
                if watcher.count == seen:
                    time.sleep(0.002)
                    continue
                seen = watcher.count
                data = home.credentials.read_bytes()
                if data.count(b"x_security_token_expires") >= count:
                    done_at = time.perf_counter()
            for feeder in feeders:
                _, err = feeder.communicate(timeout=60)
                if feeder.returncode != 0:
                    raise RuntimeError(f"credctl token failed: {err.decode()}")
            return done_at - start, watcher.count
        finally:
            watcher.close()

    # ------------------------------------------------------------------ #8 and #9

    def endpoint(self) -> None:
        """#8 a fetch from the local endpoint vs `credctl credential-process`; #9 `credctl exec`.

        One MFA session and one chained role, fresh. #8's fetches are made inside a process
        that `credctl exec` started, by botocore's ContainerProvider on one kept-alive
        connection (each process times `endpoint_fetches` after an untimed first);
        `credctl credential-process` is the whole process botocore would spawn instead.
        """
        cfg = self.config
        home = self.home("endpoint")
        home.write(policy=chain_policy(1, 1), credentials=long_term_file())
        daemon = self.daemon(home)
        daemon.start()
        self.feed_all(home, 1)
        self.wait_all_fresh(home, 2)
        role = "role-0-0"
        fetch = self.results.add("endpoint fetch by botocore's ContainerProvider, warm", "ms")
        process = self.results.add(f"credctl credential-process {role}", "ms")
        exec_true = self.results.add(f"credctl exec {role} -- true", "ms")
        floor = self.results.add("python3 -c pass (#9 round)", "ms")

        def fetches() -> None:
            command = [CREDCTL, "exec", role, "--", PYTHON, HELPERS, "endpoint-fetch"]
            done = run([*command, str(cfg.endpoint_fetches)], env=home.env)
            fetch.values.extend(t * 1000 for t in json.loads(done.stdout)["warm"])

        def credential_process() -> None:
            done = self.ctl(home, "credential-process", role)
            if '"SessionToken"' not in done.stdout:
                raise RuntimeError("credctl credential-process gave no session")
            process.values.append(done.wall * 1000)

        interleave(
            cfg.reps,
            {
                "fetch": fetches,
                "process": credential_process,
                "exec": lambda: exec_true.values.append(
                    self.ctl(home, "exec", role, "--", "true").wall * 1000
                ),
                "pass": lambda: floor.values.append(
                    run([PYTHON, "-c", "pass"], env=home.env).wall * 1000
                ),
            },
        )
        daemon.stop()
        self.results.rows.append(
            _ratio_row(
                "8",
                "one credentials fetch from the local endpoint (boto3's container"
                " provider, keep-alive, in process)",
                fetch,
                process,
                "≤ 0.10",
                digits=3,
            )
        )
        self.results.rows.append(
            _ratio_row(
                "9", f"`credctl exec {role} -- true`, installed command", exec_true, floor, "≤ 1.8"
            )
        )

    # ------------------------------------------------------------------ #5

    def big_file(self) -> None:
        """#5: one section updated in a 10,000-section file, vs configparser reading it."""
        sections = self.config.file_sections
        home = self.home("bigfile")
        home.write(credentials=_big_credentials(sections))
        target = str(home.credentials)
        middle = f"profile-{sections // 2}"
        update = self.results.add(f"safe writer: 1 section of {sections}, whole process", "ms")
        update_in = self.results.add(f"safe writer: 1 section of {sections}, in process", "ms")
        read = self.results.add(f"configparser read of {sections} sections, whole process", "ms")
        read_in = self.results.add(f"configparser read of {sections} sections, in process", "ms")

        def writer() -> None:
            _settled(home.credentials)
            done = run([PYTHON, HELPERS, "writer-update", target, middle], env=home.env)
            update.values.append(done.wall * 1000)
            update_in.values.append(json.loads(done.stdout)["seconds"] * 1000)

        def reader() -> None:
            done = run([PYTHON, HELPERS, "configparser-read", target], env=home.env)
            answer = json.loads(done.stdout)
            if answer["sections"] != sections + 1:
                raise RuntimeError(f"configparser saw {answer['sections']} sections")
            read.values.append(done.wall * 1000)
            read_in.values.append(answer["seconds"] * 1000)

        interleave(self.config.reps, {"writer": writer, "configparser": reader})
        self.results.rows.append(
            _ratio_row(
                "5",
                f"1 section updated in a {sections}-section file (safe writer, fsync)",
                update,
                read,
                "≤ 2",
                note=f" (in process: {update_in.median / read_in.median:.2f})",
            )
        )

    # ------------------------------------------------------------------ #6

    def start_to_ready(self, credentials: Path) -> None:
        """#6: `credd run` to READY=1 with 1,000 profiles whose fresh credentials are on disk."""
        cfg = self.config
        count = cfg.start_sessions * (cfg.start_roles + 1)
        home = self.home("start")
        home.write(
            policy=chain_policy(cfg.start_sessions, cfg.start_roles),
            credentials=credentials.read_text(),
        )
        ready = self.results.add(f"credd run to READY=1 ({count} profiles fresh on disk)", "ms")
        floor = self.results.add('python3 -c "import boto3" (#6 round)', "ms")

        def start() -> None:
            daemon = self.daemon(home)
            ready.values.append(daemon.start() * 1000)
            daemon.stop()

        def import_boto3() -> None:
            floor.values.append(run([PYTHON, "-c", "import boto3"], env=home.env).wall * 1000)

        interleave(cfg.reps, {"credd": start, "boto3": import_boto3})
        self.results.rows.append(
            _ratio_row(
                "6", f"`credd run` start to READY with {count} profiles", ready, floor, "≤ 2"
            )
        )

    # ------------------------------------------------------------------ #7

    def long_life(self) -> None:
        """#7: 10,000 renewals in one daemon's life (`credctl refresh` in a loop), RSS sampled."""
        cfg = self.config
        roles = cfg.long_life_roles
        self.moto.reset()
        home = self.home("longlife")
        home.write(policy=chain_policy(1, roles), credentials=long_term_file())
        daemon = self.daemon(home)
        daemon.start()
        self.feed_all(home, 1)
        self.wait_all_fresh(home, roles + 1)
        renewals = roles  # the fan-out after the code
        baseline = vm_rss_kib(daemon.pid) / MIB
        samples: list[tuple[int, float]] = [(renewals, baseline)]
        started = time.perf_counter()
        while renewals < cfg.long_life_renewals:
            done = self.ctl(home, "refresh")
            renewed = done.stdout.count(" renewed\n")
            if renewed != roles:
                raise RuntimeError(f"credctl refresh renewed {renewed} of {roles}")
            renewals += renewed
            samples.append((renewals, vm_rss_kib(daemon.pid) / MIB))
        elapsed = time.perf_counter() - started
        final = samples[-1][1]
        daemon.stop()
        growth = final - baseline
        picks = _spread(samples, 6)
        self.results.extra["RSS over renewals (renewals: MiB)"] = {
            str(n): round(r, 1) for n, r in picks
        }
        self.results.extra["renewal rate in #7 (renewals/s)"] = round(
            (renewals - roles) / elapsed, 1
        )
        self.results.rows.append(
            Row(
                "7",
                f"{renewals} renewals in one daemon's life: RSS growth",
                f"{growth:+.1f} MiB ({baseline:.1f} → {final:.1f})",
                f"RSS after the first {roles}",
                "-",
                "≤ 2 MiB",
                growth <= 2.0,
            )
        )

    # ------------------------------------------------------------------ the misses

    def explain(self) -> None:
        """Notes, computed from this run's figures, on how far each miss is from its floor."""
        series = self.results.series
        rows = {row.number: row for row in self.results.rows}
        ours = series.get("credctl token CODE")
        if ours is not None and any(rows[n].passed is False for n in ("1a", "1b") if n in rows):
            floor = sum(series[name].median for name in FLOOR)
            cli = series["aws sts get-session-token (AWS CLI v1)"].median
            note = (
                f"#1: the floor of any Python client that feeds a code and waits for a durable"
                f" write is {floor:.1f} ms (`python3 -c pass` + one STS round trip + one fsync),"
                f" already {floor / cli:.3f} × the AWS CLI"
            )
            mfa = series.get("aws-mfa --force")
            if mfa is not None:
                note += f" and {floor / mfa.median:.3f} × aws-mfa"
            note += (
                f"; credctl token spends {ours.median - floor:.1f} ms above it (its imports,"
                " the socket round trip, the daemon's own work)."
            )
            self.results.notes.append(note)
        status = next((v for k, v in series.items() if k.startswith("credctl status (")), None)
        imports = series.get(f'python3 -c "{CTL_IMPORTS}"')
        passed = [rows[n].passed for n in ("2a", "2b") if n in rows]
        if status is not None and imports is not None and False in passed:
            floor = series[FLOOR_PASS].median
            self.results.notes.append(
                f"#2: the target leaves {0.5 * floor:.1f} ms above the interpreter's"
                f" {floor:.1f}; `credctl status` spends {status.median - floor:.1f}:"
                f" {imports.median - floor:.1f} ms importing credctl's modules (`python3 -c"
                f' "{CTL_IMPORTS}"`, this run) and {status.median - imports.median:.1f} ms'
                " asking the daemon, reading its answer and writing the table."
            )
        row = rows.get("3a")
        bare = series.get(BARE_RSS)
        loads = series.get(LOADS_RSS)
        loads_iam = series.get(LOADS_IAM_RSS)
        if row is not None and row.passed is False and bare and loads and loads_iam:
            target = 1.1 * bare.median
            note = (
                f"#3a: the target is {target:.1f} MiB (1.1 × the bare client's"
                f" {bare.median:.1f}). A process that only imports credd's daemon and the"
                " libraries it runs on (botocore, PyYAML, APScheduler, keyring, jeepney, h11)"
                f" and makes one STS client peaks at {loads.median:.1f} MiB"
                f" ({loads.median / bare.median:.2f} ×); with the IAM client that key rotation"
                f" reads ages through, {loads_iam.median:.1f} MiB"
                f" ({loads_iam.median / bare.median:.2f} ×), before it holds a profile, a"
                " thread or a connection."
            )
            with_keyring = self.results.extra.get("idle daemon", {})
            without = self.results.extra.get("idle daemon, key in the file, keyring's null backend")
            if isinstance(with_keyring, dict) and isinstance(without, dict) and without:
                ours = float(with_keyring["RSS after settling (MiB)"])
                plain = float(without["RSS after settling (MiB)"])
                note += (
                    f" The daemon settles at {ours:.1f} MiB with its key in the keyring; the same"
                    f" daemon with its key in the file and keyring's null backend (the Secret"
                    f" Service never spoken to) at {plain:.1f} MiB ({plain / bare.median:.2f} ×),"
                    f" {ours - plain:+.1f} MiB for the Secret Service."
                )
            self.results.notes.append(note)
        row = rows.get("4a")
        if row is not None and row.passed is False:
            self.results.notes.append(
                "#4a: see the floor under Other observations: credd's time against the"
                " network floor and its own pacing, and its CPU per round."
            )


def _loads_cryptography(pid: int) -> bool:
    """Whether `cryptography`'s Rust extension (what SecretStorage loads) is mapped."""
    return "_rust.abi3.so" in Path(f"/proc/{pid}/maps").read_text()


def _aws_cli(code: str) -> list[str]:
    return [AWS, "sts", "get-session-token", "--serial-number", mfa_serial(0), "--token-code", code]


def _session_token(text: str, section: str) -> str:
    match = re.search(
        rf"^\[{re.escape(section)}\][^\[]*?^aws_session_token\s*=\s*(\S+)", text, re.M | re.S
    )
    return match.group(1) if match else ""


def _big_credentials(sections: int) -> str:
    """A credentials file like a busy user's: long-term keys plus `sections` session sections."""
    parts = [long_term_file()]
    for index in range(sections):
        parts.append(
            f"\n[profile-{index}]\n"
            f"aws_access_key_id = ASIA{index:016d}\n"
            f"aws_secret_access_key = {'k' * 30}{index:010d}\n"
            f"aws_session_token = {'t' * 300}{index:010d}\n"
            "x_security_token_expires = 2030-01-01T00:00:00Z\n"
        )
    return "".join(parts)


def _spread(samples: list[tuple[int, float]], count: int) -> list[tuple[int, float]]:
    if len(samples) <= count:
        return samples
    step = (len(samples) - 1) / (count - 1)
    return [samples[round(i * step)] for i in range(count)]


def _settled(path: Path) -> None:
    """Wait, untimed, until the safe writer would not wait for `path` to settle.

    A file modified by another program less than SETTLE_SECONDS ago may be half written,
    so the writer waits for it; #5 measures the update itself, not that wait (the last
    writer process, from another round, may have modified it just now).
    """
    age = time.time() - path.stat().st_mtime
    if age < SETTLE_SECONDS:
        time.sleep(SETTLE_SECONDS - age)


def _ratio_row(
    number: str,
    what: str,
    ours: Series,
    theirs: Series,
    target: str,
    *,
    digits: int = 2,
    note: str = "",
) -> Row:
    """A row judged by the ratio of two medians (in ms) against `target`, `≤ LIMIT`: the
    text shown is the limit checked."""
    ratio = ours.median / theirs.median
    limit = float(target.removeprefix("≤ "))
    return Row(
        number, what, _ms(ours), _ms(theirs), f"{ratio:.{digits}f}{note}", target, ratio <= limit
    )


def _ms(series: Series) -> str:
    return f"{series.median:.1f} ms ({series.low:.1f}–{series.high:.1f})"


def _s(series: Series) -> str:
    return f"{series.median:.2f} s ({series.low:.2f}–{series.high:.2f})"
