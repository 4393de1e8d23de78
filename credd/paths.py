"""Default locations (SPEC.md "Files and locations"). Standard library only.

Paths are returned as `str`: `credctl` imports this module, and `pathlib` would add
~17 ms to its ~25 ms start (bench/RESULTS.md #2). Callers wrap them in `Path`.
"""

from __future__ import annotations

import os

# `typing` is for the type checker only: importing it costs credctl ~4 ms of a ~25 ms start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# Linux's sun_path holds 108 bytes, macOS's 104; the smaller keeps a path portable.
MAX_SOCKET_PATH_BYTES = 104


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def policy_path(env: Mapping[str, str] = os.environ) -> str:
    """`$CREDD_POLICY`, else `$XDG_CONFIG_HOME/credd/policy.yaml`."""
    if env.get("CREDD_POLICY"):
        return os.path.expanduser(env["CREDD_POLICY"])
    config = env.get("XDG_CONFIG_HOME") or os.path.join(_home(env), ".config")
    return os.path.join(config, "credd", "policy.yaml")


def credentials_path(env: Mapping[str, str] = os.environ) -> str:
    """`$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials` (the policy may override)."""
    if env.get("AWS_SHARED_CREDENTIALS_FILE"):
        return os.path.expanduser(env["AWS_SHARED_CREDENTIALS_FILE"])
    return os.path.join(_home(env), ".aws", "credentials")


def aws_config_path(env: Mapping[str, str] = os.environ) -> str:
    """`$AWS_CONFIG_FILE`, else `~/.aws/config`."""
    if env.get("AWS_CONFIG_FILE"):
        return os.path.expanduser(env["AWS_CONFIG_FILE"])
    return os.path.join(_home(env), ".aws", "config")


def socket_path(env: Mapping[str, str] = os.environ) -> str:
    """`$CREDD_SOCKET`, else `$XDG_RUNTIME_DIR/credd/credd.sock`, else `$TMPDIR/credd-$UID/`."""
    if env.get("CREDD_SOCKET"):
        return os.path.expanduser(env["CREDD_SOCKET"])
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "credd", "credd.sock")
    tmp = env.get("TMPDIR") or "/tmp"
    return os.path.join(tmp, f"credd-{os.getuid()}", "credd.sock")
