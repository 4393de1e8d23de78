"""credd.commands.install: the user unit and LaunchAgent, as written and as managers read them."""

from __future__ import annotations

import importlib.util
import io
import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from credd.commands.install import (
    install,
    launchd_log_dir,
    launchd_plist_path,
    render,
    systemd_unit_path,
)

REPO = Path(__file__).resolve().parents[2]

# The fixed interpreters and home the repository's example copies are rendered with.
EXAMPLE_SYSTEMD_PYTHON = "/home/you/.local/share/pipx/venvs/credd/bin/python"
EXAMPLE_LAUNCHD_PYTHON = "/Users/you/.local/pipx/venvs/credd/bin/python"
EXAMPLE_HOME = "/Users/you"


def sandbox_env(tmp_path: Path) -> dict[str, str]:
    """A HOME and XDG dirs of the test's own."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "XDG_RUNTIME_DIR": str(runtime),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }


def run_install(kind: str, env: dict[str, str], **kwargs: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    options: dict[str, object] = {"dry_run": False, "force": False, "python": sys.executable}
    options.update(kwargs)
    status = install(kind, env=env, out=out, err=err, **options)  # type: ignore[arg-type]
    return status, out.getvalue(), err.getvalue()


def systemd_analyze_verify(unit: Path, env: dict[str, str]) -> str:
    """Everything `systemd-analyze verify` prints; it exits 0 even after warnings."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [analyze, "verify", "--user", "--man=no", str(unit)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout + result.stderr


def test_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit `credd install systemd` writes draws not one warning from systemd-analyze."""
    env = sandbox_env(tmp_path)
    status, out, _ = run_install("systemd", env)
    assert status == 0
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "credd.service"
    assert f"wrote {unit}" in out
    assert systemd_analyze_verify(unit, env) == ""


def test_unit_quotes_an_awkward_interpreter_path(tmp_path: Path) -> None:
    """A path with a space, % and $ reaches systemd as one literal word (verify finds the file)."""
    odd_dir = tmp_path / "my env 100% $HOME"
    odd_dir.mkdir()
    odd_python = odd_dir / "python"
    odd_python.symlink_to(sys.executable)
    env = sandbox_env(tmp_path)
    status, _, _ = run_install("systemd", env, python=str(odd_python))
    assert status == 0
    unit = systemd_unit_path(env)
    expected = f'ExecStart="{odd_dir}/python" -m credd run'.replace("%", "%%")
    assert expected in unit.read_text().splitlines()
    assert systemd_analyze_verify(unit, env) == ""


def test_unit_keeps_the_venv_symlink(tmp_path: Path) -> None:
    """A venv's bin/python is a symlink; the unit names the link, not the base interpreter."""
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    rendered = render("systemd", env=sandbox_env(tmp_path), python=str(link))
    assert f"ExecStart={link} -m credd run" in rendered.text.splitlines()


def test_unit_settings() -> None:
    """The settings SPEC.md and the issue ask for are in the unit."""
    lines = set(render("systemd", env={"HOME": "/h"}, python="/p/python").text.splitlines())
    for setting in (
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/p/python -m credd run",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "WatchdogSec=60",
        "TimeoutStopSec=10",
        "UMask=0077",
        "RuntimeDirectory=credd",
        "RuntimeDirectoryMode=0700",
        "Environment=PYTHONUNBUFFERED=1",
        "Environment=GLIBC_TUNABLES=glibc.malloc.tcache_count=0",
        "NoNewPrivileges=yes",
        "WantedBy=default.target",
    ):
        assert setting in lines


def test_plist_types_and_paths(tmp_path: Path) -> None:
    """The LaunchAgent parses as a plist, with real booleans and absolute, existing paths."""
    env = sandbox_env(tmp_path)
    plist = plistlib.loads(render("launchd", env=env, python=sys.executable).text.encode())
    assert plist["Label"] == "com.credd.agent"
    args = plist["ProgramArguments"]
    assert args == [sys.executable, "-m", "credd", "run"]
    assert os.path.isabs(args[0])
    assert os.path.exists(args[0])
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["KeepAlive"]["SuccessfulExit"] is False
    assert plist["ProcessType"] in ("Background", "Interactive", "Standard", "Adaptive")
    assert plist["Umask"] == 0o077
    assert isinstance(plist["ThrottleInterval"], int)
    logs = str(launchd_log_dir(env))
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert os.path.isabs(plist[key])
        assert os.path.dirname(plist[key]) == logs
    environment = plist["EnvironmentVariables"]
    assert all(isinstance(v, str) for v in environment.values())
    assert all(os.path.isabs(p) for p in environment["PATH"].split(":"))


def test_plist_escapes_xml_in_paths(tmp_path: Path) -> None:
    """A path with XML's special characters survives as it is."""
    env = {"HOME": str(tmp_path / "a&b<c>")}
    python = str(tmp_path / "x&y" / "python")
    plist = plistlib.loads(render("launchd", env=env, python=python).text.encode())
    assert plist["ProgramArguments"][0] == python
    assert plist["StandardErrorPath"].startswith(env["HOME"] + "/Library/Logs/credd/")


def test_launchd_dry_run_prints_the_plist_on_linux(tmp_path: Path) -> None:
    """`--dry-run` works on any OS: it prints the plist and writes nothing."""
    env = {**os.environ, **sandbox_env(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "credd.commands.install", "launchd", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert plistlib.loads(result.stdout.encode())["ProgramArguments"][0] == sys.executable
    assert not (tmp_path / "home").exists()


def test_credd_install_command_dry_run(tmp_path: Path) -> None:
    """`credd install launchd --dry-run`, through the real command line, prints the plist."""
    if importlib.util.find_spec("credd.__main__") is None:
        pytest.skip("`python -m credd` is not wired yet (no credd/__main__.py)")
    env = {**os.environ, **sandbox_env(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "credd", "install", "launchd", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = render("launchd", env=env, python=sys.executable).text
    assert result.stdout == expected
    assert not (tmp_path / "home").exists()


def test_launchd_install_creates_the_log_directory(tmp_path: Path) -> None:
    """launchd does not create StandardErrorPath's directory, so install does."""
    env = sandbox_env(tmp_path)
    status, out, _ = run_install("launchd", env)
    assert status == 0
    assert launchd_plist_path(env).is_file()
    assert launchd_log_dir(env).is_dir()
    assert "launchctl bootstrap gui/" in out
    assert launchd_plist_path(env).stat().st_mode & 0o022 == 0


def test_install_prints_the_next_commands(tmp_path: Path) -> None:
    """After writing the unit, install says exactly what to run next."""
    env = sandbox_env(tmp_path)
    _, out, _ = run_install("systemd", env)
    assert "systemctl --user daemon-reload && systemctl --user enable --now credd" in out


def test_install_is_a_no_op_when_identical(tmp_path: Path) -> None:
    """Installing twice leaves the file alone and says it is already installed."""
    env = sandbox_env(tmp_path)
    assert run_install("systemd", env)[0] == 0
    unit = systemd_unit_path(env)
    before = unit.stat()
    status, out, _ = run_install("systemd", env)
    assert status == 0
    assert "already installed" in out
    after = unit.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_install_refuses_to_overwrite_a_changed_file(tmp_path: Path) -> None:
    """A unit edited by hand is kept (exit 1) unless --force replaces it."""
    env = sandbox_env(tmp_path)
    assert run_install("systemd", env)[0] == 0
    unit = systemd_unit_path(env)
    edited = unit.read_text() + "# my edit\n"
    unit.write_text(edited)

    status, _, err = run_install("systemd", env)
    assert status == 1
    assert "--force" in err
    assert unit.read_text() == edited

    status, out, _ = run_install("systemd", env, force=True)
    assert status == 0
    assert f"replaced {unit}" in out
    assert "systemctl --user restart credd" in out
    assert unit.read_text() == render("systemd", env=env, python=sys.executable).text


def test_install_dry_run_writes_nothing(tmp_path: Path) -> None:
    """--dry-run prints exactly the file and creates no file or directory."""
    env = sandbox_env(tmp_path)
    status, out, _ = run_install("systemd", env, dry_run=True)
    assert status == 0
    assert out == render("systemd", env=env, python=sys.executable).text
    assert not (tmp_path / "home").exists()


def test_systemd_path_honours_xdg_config_home(tmp_path: Path) -> None:
    """The unit goes under $XDG_CONFIG_HOME, or ~/.config when it is unset or relative."""
    assert systemd_unit_path({"HOME": "/h", "XDG_CONFIG_HOME": "/c"}) == Path(
        "/c/systemd/user/credd.service"
    )
    for env in ({"HOME": "/h"}, {"HOME": "/h", "XDG_CONFIG_HOME": "rel"}):
        assert systemd_unit_path(env) == Path("/h/.config/systemd/user/credd.service")


@pytest.mark.parametrize(
    ("kind", "python"),
    [("upstart", sys.executable), ("systemd", "python3"), ("systemd", "/usr/bin/py\nthon")],
)
def test_bad_kind_or_interpreter_exits_2(tmp_path: Path, kind: str, python: str) -> None:
    """An unknown service manager or a relative interpreter path is an error, nothing written."""
    status, out, err = run_install(kind, sandbox_env(tmp_path), python=python)
    assert status == 2
    assert err.startswith("credd: error: ")
    assert out == ""
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("example", "kind", "python"),
    [
        ("systemd/credd.service", "systemd", EXAMPLE_SYSTEMD_PYTHON),
        ("launchd/com.credd.agent.plist", "launchd", EXAMPLE_LAUNCHD_PYTHON),
    ],
)
def test_repository_examples_match_the_renderer(example: str, kind: str, python: str) -> None:
    """The repository's unit and plist are what `credd install --dry-run` prints.

    The templates in credd/units/ are the source; regenerate the examples with
    HOME=/Users/you python -m credd.commands.install KIND --dry-run --python PYTHON > FILE
    """
    rendered = render(kind, env={"HOME": EXAMPLE_HOME}, python=python).text
    assert (REPO / example).read_text(encoding="utf-8") == rendered


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


@pytest.mark.parametrize("kind", ["systemd", "launchd"])
def test_service_file_and_its_new_directories_are_writable_only_by_the_user(
    tmp_path: Path, kind: str
) -> None:
    """The unit says which program runs as the user: under a umask of 0002 (which would
    leave it group-writable) it is written 0644, a replacement too, and each directory
    install makes is 0755 (the launchd log directory 0700); HOME is left as it was."""
    env = sandbox_env(tmp_path)
    home = Path(env["HOME"])
    home.mkdir(mode=0o750)
    home.chmod(0o750)
    old = os.umask(0o002)
    try:
        assert run_install(kind, env)[0] == 0
        path = systemd_unit_path(env) if kind == "systemd" else launchd_plist_path(env)
        path.write_text(path.read_text() + "# edited\n")
        path.chmod(0o666)
        assert run_install(kind, env, force=True)[0] == 0
    finally:
        os.umask(old)
    assert _mode(path) == 0o644
    made = [d for d in path.parents if home in d.parents]
    assert made and all(_mode(d) == 0o755 for d in made), [oct(_mode(d)) for d in made]
    assert _mode(home) == 0o750
    if kind == "launchd":
        assert _mode(launchd_log_dir(env)) == 0o700
        assert _mode(launchd_log_dir(env).parent) == 0o755


def test_existing_config_directories_are_not_loosened(tmp_path: Path) -> None:
    """A ~/.config kept 0700 stays 0700 when the unit is written under it."""
    env = sandbox_env(tmp_path)
    config = Path(env["XDG_CONFIG_HOME"])
    config.mkdir(parents=True)
    config.chmod(0o700)
    assert run_install("systemd", env)[0] == 0
    assert _mode(config) == 0o700
    assert _mode(systemd_unit_path(env)) == 0o644
