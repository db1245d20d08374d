"""The bearer token: where it comes from, how it is handed to the client, and how requests are checked.

Every route but `GET /health` needs `Authorization: Bearer <token>`. The token is never printed. It comes from,
in this order:

1. the environment variable DANCE_ANY_BEAT_TOKEN (the add-on, or a service manager, chose it; nothing is written);
2. `--token-file F`: read from F when F holds one (a render farm's admin put it there); otherwise a random token is
   generated and written to F, readable by this user only (local mode: the add-on passes a fresh path, waits for
   the ready line, then reads F);
3. neither: a random token written to JOBS_DIR/token (mode 0600).

The ready line names the file ("token_file", or null when the token came from the environment). A server bound
to anything but a loopback address refuses to start unless the token came from 1. or 2.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

TOKEN_ENV = "DANCE_ANY_BEAT_TOKEN"
DEFAULT_TOKEN_FILE = "token"  # inside the jobs folder, when neither the environment nor --token-file gives one
MIN_TOKEN_LENGTH = 16
TOKEN_HINT = "make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\""


class TokenError(ValueError):
    """The token cannot be set up as asked; the message says what to change."""


@dataclass(frozen=True)
class Token:
    value: str
    file: Path | None  # where a client reads it; None when it came from the environment
    explicit: bool  # chosen by whoever started the server (environment or --token-file), not made up here

    def matches(self, given: str) -> bool:
        """Constant-time comparison (no early exit on the first differing character)."""
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.value.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); a name other than localhost is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check(token: str, source: str) -> str:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise TokenError(f"the token from {source} must be at least {MIN_TOKEN_LENGTH} characters without spaces; "
                         f"{TOKEN_HINT}")  # fmt: skip
    return token


def _write_new(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)  # an existing empty file keeps its mode through O_CREAT
    return token


def resolve_token(host: str, token_file: str | os.PathLike | None, jobs_dir: Path) -> Token:
    """The server's token (see the module docstring); TokenError when it cannot be set up."""
    env = os.environ.get(TOKEN_ENV, "")
    if env.strip():
        return Token(_check(env, f"${TOKEN_ENV}"), None, explicit=True)
    if token_file is not None:
        path = Path(token_file).expanduser().absolute()
        if path.is_dir():
            raise TokenError(f"--token-file {path} is a folder; give a file path")
        existing = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        if existing:
            return Token(_check(existing, str(path)), path, explicit=True)
        return Token(_write_new(path), path, explicit=True)
    if not is_loopback(host):
        raise TokenError(
            f"refusing to serve on {host}, which is not a loopback address, without a token: set {TOKEN_ENV} or "
            f"pass --token-file FILE (read from FILE, or generated into it); {TOKEN_HINT}"
        )
    return Token(_write_new(jobs_dir / DEFAULT_TOKEN_FILE), jobs_dir / DEFAULT_TOKEN_FILE, explicit=False)


def check_authorization(header: str | None, token: Token) -> str | None:
    """None when the Authorization header carries the token; otherwise what is wrong, for a 401 reply."""
    if not header:
        return "missing token: send the header 'Authorization: Bearer <token>' (every route but /health needs it)"
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return "the Authorization header must be 'Bearer <token>'"
    if not token.matches(given.strip()):
        return "wrong token: use the token of this server (local mode: the file named by the ready line)"
    return None
