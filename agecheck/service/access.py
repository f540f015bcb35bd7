"""Who may call the service: API tokens from the environment or a file, never from ``params.yaml``.

Tokens are compared in constant time and never logged. Serving on a non-loopback address without a
token is refused unless asked for explicitly: the service receives customers' faces.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from agecheck.config import ServeConfig
from agecheck.errors import AgecheckError

#: Shorter tokens are refused: they can be guessed.
MIN_TOKEN_LENGTH = 16


def _checked(token: str, where: str) -> bytes:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise AgecheckError(f"the API token in {where} is shorter than {MIN_TOKEN_LENGTH} characters")
    if not token.isascii() or any(char.isspace() for char in token):
        raise AgecheckError(f"the API token in {where} must be printable ASCII without spaces")
    return token.encode("ascii")


def load_tokens(serve: ServeConfig, environ: Mapping[str, str] = os.environ) -> tuple[bytes, ...]:
    """The accepted tokens: ``serve.token_env``'s value and each line of ``serve.token_file``
    (blank lines and ``#`` comments skipped; several lines allow rotating tokens)."""
    tokens: list[bytes] = []
    if serve.token_env and environ.get(serve.token_env, "").strip():
        tokens.append(_checked(environ[serve.token_env], f"${serve.token_env}"))
    if serve.token_file:
        path = Path(serve.token_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise AgecheckError(f"serve.token_file {path} cannot be read: {type(err).__name__}") from None
        found = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not found:
            raise AgecheckError(f"serve.token_file {path} holds no token")
        tokens.extend(_checked(line, f"serve.token_file {path}") for line in found)
    return tuple(tokens)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, tokens: tuple[bytes, ...], run_open: bool) -> None:
    """Refuse to serve faces to the whole network without a token, unless ``run_open``."""
    if not tokens and not run_open and not is_loopback(host):
        raise AgecheckError(
            f"refusing to serve on {host} without an API token: set the token in the environment "
            "variable named by serve.token_env or in serve.token_file, or pass --open to let anyone "
            "on the network send photos"
        )


def token_matches(presented: bytes, tokens: tuple[bytes, ...]) -> bool:
    """Constant-time comparison with every accepted token (no early exit on the first match)."""
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented, token)
    return matched
