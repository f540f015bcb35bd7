"""User-facing errors and the wrapper that turns them into one-line messages."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

T = TypeVar("T")


class AgecheckError(Exception):
    """A problem the user can fix (bad input layout, missing file...): shown without traceback."""


def one_line(reason: object, limit: int | None = None) -> str:
    """``reason`` (an exception or its message) on one line, cut to ``limit`` characters, for an
    :class:`AgecheckError` that quotes a library's error."""
    return " ".join(str(reason).split())[:limit]


def exit_on_error(main: Callable[..., T]) -> Callable[..., T]:
    """Run ``main``; print an :class:`AgecheckError` as ``error: ...`` and exit with status 2."""

    @wraps(main)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return main(*args, **kwargs)
        except AgecheckError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
