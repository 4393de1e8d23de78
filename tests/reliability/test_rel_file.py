"""The credentials file under stress: full and read-only disks, broken files, odd shapes."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from relsupport import WATCH, Box, role_policy, wait_until
from support.daemon import AWS, CREDCTL, LONG_TERM_KEY_ID, LONG_TERM_SECRET

from credd.errors import FileWriteError
from credd.files.writer import CredentialsWriter

NOBODY = 65534
KEYS = (
    f"[default]\naws_access_key_id = {LONG_TERM_KEY_ID}\n"
    f"aws_secret_access_key = {LONG_TERM_SECRET}\n"
)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[None]:
    """A tiny tmpfs on `where`, or skip: mounting needs root (which CI has)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        _run("umount", "-l", str(where))


def _fill(directory: Path) -> Path:
    """Fill the filesystem of `directory` to the last byte; return the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0")
        with pytest.raises(OSError) as full:
            os.write(fd, b"\0")
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _holds_deleted_files(pid: int) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fds):
        with contextlib.suppress(FileNotFoundError):
            if os.readlink(fds / fd).endswith(" (deleted)"):
                return True
    return False


@contextlib.contextmanager
def _fault(kind: str, box: Box) -> Iterator[str]:
    """Make the directory of the credentials file unwritable in the way `kind` names."""
    aws = box.credentials.parent
    if kind == "enospc":
        filler = _fill(aws)
        try:
            yield "ENOSPC"
        finally:
            filler.unlink()
    elif kind == "read-only":
        remount = _run("mount", "-o", "remount,ro", str(aws))
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        try:
            yield "EROFS"
        finally:
            _run("mount", "-o", "remount,rw", str(aws))
    else:
        immutable = _run("chattr", "+i", str(aws))
        if immutable.returncode != 0:
            pytest.skip(f"chattr +i not supported here: {immutable.stderr.strip()}")
        try:
            yield "EPERM"
        finally:
            _run("chattr", "-i", str(aws))


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.case(
    "Credentials file",
    "ENOSPC, a read-only filesystem, an immutable directory, with a running daemon",
    "original byte-identical, the error in `credctl status`, the daemon keeps running "
    "(no restart loop) and writes again once the disk is writable",
)
@pytest.mark.parametrize("kind", ["enospc", "read-only", "immutable"])
def test_an_unwritable_disk_leaves_the_file_as_it_was(
    make_box: Callable[..., Box], kind: str
) -> None:
    """Simulated for real, as root: `enospc` is a 64 KiB tmpfs on ~/.aws filled to the
    last byte; `read-only` is that tmpfs remounted ro (EROFS); `immutable` is `chattr +i`
    on ~/.aws on the ext4 disk (EPERM even for root). A renewal then fails to write: the
    file keeps every byte, no temp file is left, status shows the errno and the path, the
    same daemon process keeps answering, and once the fault is lifted the held credentials
    are written on the retry."""
    box = make_box(policy_text=role_policy("role-a"))
    aws = box.credentials.parent
    with contextlib.ExitStack() as stack:
        if kind != "immutable":
            stack.enter_context(_tmpfs(aws, "64k"))
            box.credentials.write_text(box.credentials_text)
            box.credentials.chmod(0o600)
        proc = box.start()
        box.wait_states({"role-a": "fresh"})
        before = box.credentials.read_bytes()
        # credd holds the file it replaced open for a moment (to carry over a late write
        # into it), and a filesystem with a deleted file open cannot be remounted ro.
        wait_until(
            "credd to let go of the file it replaced",
            lambda: not _holds_deleted_files(proc.pid),
        )
        with _fault(kind, box) as errname:
            done = box.ctl("refresh", "role-a")
            assert done.returncode == 1, done
            entry = box.status_of("role-a")
            assert entry["state"] == "error"
            assert errname in entry["last_error"]
            assert str(box.credentials) in entry["last_error"]
            assert box.credentials.read_bytes() == before
            assert not box.temp_files()
            held = box.ctl("credential-process", "role-a")
            assert held.returncode == 0, "renewed credentials are kept in memory"
            assert proc.poll() is None and box.status()["daemon"]["pid"] == proc.pid
        # The fault is gone: the retry (backoff of a few seconds) writes what is held.
        wait_until(
            "the held credentials to be written once writable",
            lambda: box.status_of("role-a")["state"] == "fresh",
            timeout=30,
        )
        key_id = json.loads(held.stdout)["AccessKeyId"]
        assert key_id in box.credentials.read_text()
        assert proc.poll() is None
        box.stop()


BROKEN = {
    "not a key line": (
        KEYS + "aws_session_token = CANARYtokenAAAAAAAAAA\nCANARYgarbageBBBBBBBBBB\n",
        5,
    ),
    "duplicate section": (
        KEYS + "[x]\nk = v\n[default]\naws_secret_access_key = CANARYdupCCCCCCCCCCCC\n",
        6,
    ),
    "duplicate key": (KEYS + "aws_secret_access_key = CANARYdupkeyDDDDDDDDDD\n", 4),
    "invalid UTF-8": (KEYS + "x_note = CANARYutf8EEEEEEEEEE\xff\n", 4),
}


@pytest.mark.slow
@pytest.mark.case(
    "Credentials file",
    "an unparseable file: a stray line, a duplicate section or key, invalid UTF-8",
    "never rewritten; the status error names the path and the line, never a value",
)
@pytest.mark.parametrize("what", sorted(BROKEN))
def test_an_unparseable_file_is_never_rewritten(make_box: Callable[..., Box], what: str) -> None:
    """The daemon runs on a file botocore would refuse (with canary values in it): the
    role goes to `error` with `<path>:<line>`, `credctl refresh` says the same, and the
    file keeps every byte. No canary appears in status, credctl or the log."""
    text, line = BROKEN[what]
    box = make_box(policy_text=role_policy("role-a"))
    raw = text.encode("utf-8").replace("\xff".encode(), b"\xff")
    box.credentials.write_bytes(raw)
    canaries = [w for w in text.split() if w.startswith("CANARY")]
    WATCH.secret(*(c.rstrip("\xff") for c in canaries))
    box.start()
    entry = wait_until(
        "role-a to report the broken file",
        lambda: (e := box.status_of("role-a"))["state"] == "error" and e,
    )
    assert f"{box.credentials}:{line}:" in entry["last_error"], entry
    done = box.ctl("refresh", "role-a")
    assert done.returncode == 1
    assert f"{box.credentials}:{line}:" in done.stdout + done.stderr
    assert box.credentials.read_bytes() == raw
    for canary in canaries:
        assert canary.rstrip("\xff") not in box.log_text() + done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.case(
    "Credentials file",
    "`aws configure set` writing other profiles during a burst of renewals",
    "none of the AWS CLI's writes is lost (one that lands in the file a rename replaced"
    " is carried over a moment later) and every renewal lands",
)
def test_aws_configure_set_during_a_renewal_burst(make_box: Callable[..., Box]) -> None:
    """The real AWS CLI writes 8 other profiles in place, with no lock, while `credctl
    refresh` renews 4 roles over and over: at the end every AWS CLI profile is in the
    file with its value, and every role's section holds exactly the credentials the
    daemon holds (its last renewal)."""
    roles = ("role-a", "role-b", "role-c", "role-d")
    box = make_box(policy_text=role_policy(*roles))
    box.start()
    box.wait_states(dict.fromkeys(roles, "fresh"))
    env = {**box.env, "AWS_SHARED_CREDENTIALS_FILE": str(box.credentials)}
    stop = threading.Event()
    refreshes: list[int] = []

    def burst() -> None:
        while not stop.is_set():
            refreshes.append(box.ctl("refresh", *roles).returncode)

    thread = threading.Thread(target=burst)
    thread.start()
    try:
        for i in range(8):
            for key, value in (
                ("aws_access_key_id", f"AKIAOTHER{i:011d}"),
                ("aws_secret_access_key", f"other-secret-{i}"),
            ):
                done = subprocess.run(
                    [AWS, "configure", "set", key, value, "--profile", f"other{i}"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        thread.join(60)
    assert len(refreshes) >= 3 and set(refreshes) == {0}, refreshes

    from botocore.configloader import raw_config_parse

    def converged() -> bool:
        parsed = raw_config_parse(str(box.credentials), parse_subsections=False)
        for role in roles:
            held = box.ctl("credential-process", role).stdout
            if parsed.get(role, {}).get("aws_access_key_id", "") not in held:
                return False
        return True

    def every_cli_write() -> bool:
        parsed = raw_config_parse(str(box.credentials), parse_subsections=False)
        return all(
            parsed.get(f"other{i}", {}).get("aws_access_key_id") == f"AKIAOTHER{i:011d}"
            and parsed[f"other{i}"].get("aws_secret_access_key") == f"other-secret-{i}"
            for i in range(8)
        )

    # A CLI write that lands in the file a rename has just replaced is carried over a
    # moment (0.75 s) after that write, or at the next write.
    wait_until("every AWS CLI write in the file", every_cli_write, timeout=30)
    assert converged(), "a renewal did not land in the file"


@pytest.mark.slow
@pytest.mark.case(
    "Credentials file",
    "a symlinked credentials file; an existing 0644 file",
    "written through to the target, the link stays a link; the file becomes 0600",
)
def test_symlinked_0644_file_is_written_through_and_made_private(
    make_box: Callable[..., Box],
) -> None:
    """~/.aws/credentials is a symlink to a 0644 file in a dotfiles directory: after a
    renewal the link is still the same link, the target holds the new section and is
    0600, and the source keys are still there."""
    box = make_box(policy_text=role_policy("role-a"))
    real = box.root / "dotfiles" / "aws-credentials"
    real.parent.mkdir()
    real.write_text(box.credentials_text)
    real.chmod(0o644)
    box.credentials.unlink()
    box.credentials.symlink_to(real)
    box.start()
    box.wait_states({"role-a": "fresh"})
    assert box.credentials.is_symlink()
    assert os.readlink(box.credentials) == str(real)
    assert real.stat().st_mode & 0o777 == 0o600
    text = real.read_text()
    assert "[role-a]" in text and LONG_TERM_KEY_ID in text
    assert not box.temp_files()


@pytest.mark.case(
    "Credentials file",
    "a dangling symlink",
    "its target is created (0600) and the link stays a link",
)
def test_a_dangling_symlink_gets_its_target(tmp_path: Path) -> None:
    """A link to a file that does not exist yet (a fresh dotfiles checkout): the target is
    created 0600 with the section, and the link is kept."""
    link, target = tmp_path / "credentials", tmp_path / "store" / "credentials"
    target.parent.mkdir(mode=0o700)
    link.symlink_to(target)
    CredentialsWriter(link).update({"p": {"aws_access_key_id": "AKIAX"}})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.stat().st_mode & 0o777 == 0o600
    assert "[p]" in target.read_text()


@pytest.mark.case(
    "Credentials file",
    "a file owned by another user",
    "refused: FileWriteError naming the uid; the file, its owner and mode are unchanged",
)
def test_a_file_of_another_user_is_not_replaced(tmp_path: Path) -> None:
    """A rename would silently make another user's file ours (and take it from them);
    credd refuses and says whose it is. Reading it stays possible."""
    path = tmp_path / "credentials"
    path.write_text(KEYS)
    path.chmod(0o644)
    os.chown(path, NOBODY, NOBODY)
    before = path.read_bytes()
    writer = CredentialsWriter(path)
    assert writer.read()["default"]["aws_access_key_id"] == LONG_TERM_KEY_ID
    with pytest.raises(FileWriteError) as refused:
        writer.update({"p": {"aws_access_key_id": "AKIAX"}})
    assert f"uid {NOBODY}" in refused.value.message
    assert LONG_TERM_SECRET not in refused.value.message
    info = path.stat()
    assert (info.st_uid, info.st_mode & 0o777, path.read_bytes()) == (NOBODY, 0o644, before)


@pytest.mark.case(
    "Credentials file",
    "a hard-linked file",
    "refused: FileWriteError saying it has 2 links; both names unchanged",
)
def test_a_hard_linked_file_is_not_split(tmp_path: Path) -> None:
    """A rename would split the link: the other name would keep the old secrets and
    never be renewed. credd refuses and says to use a symlink."""
    path, other = tmp_path / "credentials", tmp_path / "backup"
    path.write_text(KEYS)
    os.link(path, other)
    with pytest.raises(FileWriteError) as refused:
        CredentialsWriter(path).update({"p": {"aws_access_key_id": "AKIAX"}})
    assert "2 hard links" in refused.value.message
    assert path.read_text() == other.read_text() == KEYS
    assert os.stat(path).st_ino == os.stat(other).st_ino


@pytest.mark.slow
@pytest.mark.case(
    "Credentials file",
    "a missing ~/.aws",
    "created 0700 with the file 0600 (credctl import, the same safe writer)",
)
def test_a_missing_aws_directory_is_created_private(tmp_path: Path) -> None:
    """`credctl import` in a HOME with no ~/.aws: the directory is made 0700 and the
    file 0600, whatever the umask."""
    home = tmp_path / "home"
    home.mkdir()
    csv = tmp_path / "keys.csv"
    csv.write_text(
        f"User Name,Access key ID,Secret access key\nalice,{LONG_TERM_KEY_ID},{LONG_TERM_SECRET}\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "NO_COLOR": "1"}
    done = subprocess.run(
        [CREDCTL, "import", "--csv", str(csv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=lambda: os.umask(0o022),
    )
    WATCH.text("credctl import", done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    aws = home / ".aws"
    assert aws.stat().st_mode & 0o777 == 0o700
    assert (aws / "credentials").stat().st_mode & 0o777 == 0o600
    assert "[alice]" in (aws / "credentials").read_text()
