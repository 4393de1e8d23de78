"""moto's server, with one change: GetSessionToken hands out new credentials on every call.

moto answers GetSessionToken with the same fixed example keys and token every
time. Real STS never does, and with fixed answers credd's writer rightly finds
nothing to change and skips the rewrite, which would leave the fsync and rename
out of the very timings that are meant to include them. AssumeRole is moto's own
and already answers with fresh credentials. Run as `python bench/local_sts.py
-H 127.0.0.1 -p PORT` (moto's server arguments).
"""

from __future__ import annotations

import base64
import os
import secrets
import string
import sys
from typing import Any

from moto import server
from moto.core.responses import ActionResult
from moto.sts.responses import TokenResponse
from moto.sts.utils import random_session_token

_KEY_CHARS = string.ascii_uppercase + string.digits


def _get_session_token(self: TokenResponse) -> Any:
    duration = self._get_int_param("DurationSeconds", 43200)
    token = self.backend.get_session_token(duration=duration)
    return ActionResult(
        {
            "Credentials": {
                "AccessKeyId": "ASIA" + "".join(secrets.choice(_KEY_CHARS) for _ in range(16)),
                "SecretAccessKey": base64.b64encode(os.urandom(30)).decode(),
                "SessionToken": random_session_token(),
                "Expiration": token.expiration,
            }
        }
    )


TokenResponse.get_session_token = _get_session_token  # type: ignore[method-assign]

if __name__ == "__main__":
    server.main(sys.argv[1:])
