"""The control socket's requests: decoded wire messages in, reply objects out.

The wire glue lives here, so the daemon's domain methods take and return plain
values. Every failure becomes a reply with a stable fault code: credd's own errors
carry theirs, and anything unexpected is `INTERNAL` (logged here, never sent with
its details), so a client always gets an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from credd import protocol
from credd.errors import BadInputError, CreddError, Fault

if TYPE_CHECKING:
    from credd.daemon.core import Daemon

log = logging.getLogger(__name__)

# Requests that start work a stopping daemon could not finish.
_REFUSED_WHEN_STOPPING = frozenset({"token", "refresh", "reload", "rotate"})


async def handle(daemon: Daemon, request: Mapping[str, Any]) -> dict[str, Any]:
    """Answer one decoded request (any op but subscribe) with a reply object."""
    op = request["op"]
    try:
        if daemon.stopping and op in _REFUSED_WHEN_STOPPING:
            raise CreddError("credd is stopping; try again once it has restarted")
        if op == "status":
            return protocol.ok(daemon.status())
        if op == "ping":
            return protocol.ok({"pid": daemon.pid})
        if op == "token":
            code = protocol.validate_code(request.get("code"))
            profile = protocol.optional_str(request, "profile")
            return protocol.ok(await daemon.feed_code(code, profile))
        if op == "code-target":
            profile = protocol.optional_str(request, "profile")
            return protocol.ok({"profile": daemon.code_target(profile)})
        if op == "refresh":
            return protocol.ok(await daemon.refresh(protocol.str_list(request, "profiles")))
        if op == "reload":
            return protocol.ok(await daemon.reload())
        if op == "rotate":
            return protocol.ok(await daemon.rotate(protocol.optional_str(request, "profile") or ""))
        if op == "credential-process":
            name = protocol.optional_str(request, "profile")
            return protocol.ok(daemon.credential_process(name or ""))
        if op in protocol.ENDPOINT_OPS and daemon.endpoint is not None:
            return protocol.ok(await daemon.endpoint.handle(op, request))
        raise BadInputError(f"op {op!r} cannot be used here", fault=Fault.UNKNOWN_OP)
    except CreddError as error:
        return protocol.failure_from(error)
    except Exception:
        log.exception("unexpected failure answering a %r request", op)
        return protocol.failure(
            Fault.INTERNAL, f"credd failed unexpectedly answering {op!r}; see its log"
        )
