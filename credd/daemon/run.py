"""`credd run`: wires the daemon to its real adapters and runs the event loop until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from credd import __version__
from credd.adapters.clock import SystemClock
from credd.adapters.iam import Boto3Iam
from credd.adapters.keyring import Keyring
from credd.adapters.memory import one_arena, resume_collector
from credd.adapters.pacing import Pacer, concurrency_from
from credd.adapters.scheduler import ApsScheduler
from credd.adapters.servicemanager import LoopWatchdog, ServiceNotifier
from credd.adapters.sts import Boto3Sts, quiet_aws_loggers, read_timeout_from
from credd.daemon.codesources import CodeSources
from credd.daemon.core import HEARTBEAT_SECONDS, Daemon
from credd.daemon.endpoint import Endpoint
from credd.daemon.server import ControlServer
from credd.daemon.sockets import Listener, claim
from credd.errors import CreddError, PolicyError
from credd.files.awsconfig import RegionRecorder
from credd.files.writer import CredentialsWriter
from credd.policy import Policy, load_policy
from credd.rotation.journal import Journal, journal_path
from credd.rotation.rotate import Rotator

log = logging.getLogger(__name__)

# Worker threads beyond the STS calls in flight: file writes and reads, keyring calls.
SPARE_THREADS = 4
# launchd has no watchdog: a loop that misses this many heartbeats ends the process.
LOOP_STALL_SECONDS = 4 * HEARTBEAT_SECONDS
# A clean stop may wait this long for a write already begun; a write waits at most
# WRITER_LOCK_TIMEOUT_SECONDS for another writer's lock, so it fits.
STOP_TIMEOUT_SECONDS = 5.0
WRITER_LOCK_TIMEOUT_SECONDS = 3.0


def run(*, policy_path: Path, socket_path: Path, env: Mapping[str, str]) -> int:
    """Run the daemon in the foreground; the exit status follows SPEC.md (2: invalid policy)."""
    one_arena()
    quiet_aws_loggers()
    try:
        policy = load_policy(policy_path, env, in_keyring=Keyring().holds)
    except PolicyError as error:
        sys.stderr.write(error.message + "\n")
        return 2
    for warning in policy.warnings:
        log.warning("%s", warning)
    try:
        sts = Boto3Sts(read_timeout=read_timeout_from(env), pacer=Pacer(concurrency_from(env)))
        listener = claim(socket_path)
    except CreddError as error:
        sys.stderr.write(f"credd: error: {error.message}\n")
        return error.exit_status
    _sweep_temp_files(policy)
    try:
        status = asyncio.run(_serve(policy, policy_path, listener, sts, env))
    finally:
        listener.close()
    log.info("stopped")
    logging.shutdown()
    # A thread may still be inside an STS call that only its read timeout will end; the
    # file is consistent (writes were drained), so do not wait for it at interpreter exit.
    os._exit(status)


def _sweep_temp_files(policy: Policy) -> None:
    """Remove temp files that writes killed mid-way left beside the credentials file.

    They hold session secrets; waiting for the next renewal to sweep them could take hours.
    """
    try:
        CredentialsWriter(policy.credentials_file).sweep_stale_temp_files()
    except CreddError as error:
        log.warning("could not sweep old temp files: %s", error.message)


async def _serve(
    policy: Policy, policy_path: Path, listener: Listener, sts: Boto3Sts, env: Mapping[str, str]
) -> int:
    loop = asyncio.get_running_loop()
    notifier = ServiceNotifier(env)
    # STS calls, file writes and keyring calls run here; the STS pacer bounds the STS calls.
    executor = ThreadPoolExecutor(
        sts.concurrency + SPARE_THREADS, thread_name_prefix="credd-worker"
    )
    code_sources = CodeSources()
    clock = SystemClock()
    # Reads the daemon's memory through `held`; listens once `credctl exec` first asks.
    endpoint = Endpoint(
        lookup=lambda name: daemon.held(name),  # noqa: PLW0108 (`daemon` is made just below)
        now=clock.now,
        port=lambda: daemon.policy.endpoint_port,
    )
    keyring = Keyring()
    daemon = Daemon(
        policy=policy,
        load_policy=lambda: load_policy(policy_path, env, in_keyring=Keyring().holds),
        sts=sts,
        clock=clock,
        scheduler=ApsScheduler(),
        executor=executor,
        writer_for=_writer,
        notifier=notifier,
        code_helper=code_sources,
        endpoint=endpoint,
        regions=RegionRecorder.from_env(env),
        keyring=keyring,
        rotator=Rotator(
            iam=Boto3Iam(aws=sts.aws),
            journal=Journal(journal_path(env)),
            credentials_file=policy.credentials_file,
            keyring=keyring,
            env=env,
        ),
        socket_path=listener.path,
        pid=os.getpid(),
        version=__version__,
    )
    server = ControlServer(listener, daemon)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # The first plan is made before any request is served: clients wait in the listen
    # backlog meanwhile, and a reload cannot race it.
    daemon.start_scheduler()
    await daemon.start()
    await server.start()
    reloads: set[asyncio.Task[None]] = set()
    loop.add_signal_handler(
        signal.SIGHUP, lambda: _track(reloads, loop.create_task(_reload(daemon)))
    )
    notifier.ready(daemon.status_text())
    # cli.py paused the cyclic collector for the start.
    log.debug("started; the cyclic collector is on, %d objects kept out", resume_collector())
    log.info(
        "credd %s serving %d profiles on %s (policy %s)",
        __version__,
        len(policy.profiles),
        listener.path,
        policy_path,
    )
    watchdog = LoopWatchdog(LOOP_STALL_SECONDS)
    watchdog.start()
    tasks = [
        loop.create_task(daemon.heartbeat(on_beat=watchdog.beat), name="heartbeat"),
        loop.create_task(_systemd_watchdog(notifier), name="systemd-watchdog"),
    ]
    failures: list[BaseException] = []
    for task in tasks:
        # If one of these dies, the daemon no longer does its job: say why, and stop
        # (exit 1: systemd and launchd start a fresh one).
        task.add_done_callback(lambda t: _fatal(t, stop, failures))
    await stop.wait()

    log.info("stopping")
    notifier.stopping()
    watchdog.stop()
    for task in tasks:
        task.cancel()
    server.stop_accepting()
    try:
        # Subscribers hear "shutdown" before their connections are closed.
        await asyncio.wait_for(daemon.stop(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.error("a credentials-file write did not finish in %ss", STOP_TIMEOUT_SECONDS)
    await server.close()
    await endpoint.close()
    await code_sources.close()
    executor.shutdown(wait=False, cancel_futures=True)
    return 1 if failures else 0


def _writer(path: Path) -> CredentialsWriter:
    # A lock held elsewhere gives up before a stop's budget runs out, so a stop never cuts
    # a write off; the renewal it carried is retried.
    return CredentialsWriter(path, lock_timeout=WRITER_LOCK_TIMEOUT_SECONDS)


def _track(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _fatal(task: asyncio.Task[None], stop: asyncio.Event, failures: list[BaseException]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.critical("internal task %s failed: %r; stopping", task.get_name(), error)
        failures.append(error)
        stop.set()


async def _reload(daemon: Daemon) -> None:
    # An invalid policy is logged by the daemon, and the old one stays in force.
    with contextlib.suppress(CreddError):
        await daemon.reload()


async def _systemd_watchdog(notifier: ServiceNotifier) -> None:
    """WATCHDOG=1 from the event loop itself, so a hung loop is caught."""
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
