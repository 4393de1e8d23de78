"""Default locations (SPEC.md "Files and locations"). Standard library only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# Linux's sun_path holds 108 bytes, macOS's 104; the smaller keeps a path portable.
MAX_SOCKET_PATH_BYTES = 104


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def policy_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$CREDD_POLICY`, else `$XDG_CONFIG_HOME/credd/policy.yaml`."""
    if env.get("CREDD_POLICY"):
        return Path(env["CREDD_POLICY"]).expanduser()
    config = env.get("XDG_CONFIG_HOME") or str(_home(env) / ".config")
    return Path(config) / "credd" / "policy.yaml"


def credentials_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials` (the policy may override)."""
    if env.get("AWS_SHARED_CREDENTIALS_FILE"):
        return Path(env["AWS_SHARED_CREDENTIALS_FILE"]).expanduser()
    return _home(env) / ".aws" / "credentials"


def aws_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$AWS_CONFIG_FILE`, else `~/.aws/config`."""
    if env.get("AWS_CONFIG_FILE"):
        return Path(env["AWS_CONFIG_FILE"]).expanduser()
    return _home(env) / ".aws" / "config"


def socket_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$CREDD_SOCKET`, else `$XDG_RUNTIME_DIR/credd/credd.sock`, else `$TMPDIR/credd-$UID/`."""
    if env.get("CREDD_SOCKET"):
        return Path(env["CREDD_SOCKET"]).expanduser()
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "credd" / "credd.sock"
    tmp = env.get("TMPDIR") or "/tmp"
    return Path(tmp) / f"credd-{os.getuid()}" / "credd.sock"
