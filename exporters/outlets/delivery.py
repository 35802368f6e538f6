"""Sending with retries: exponential backoff, then give up and raise (publish_all logs
and counts the failure). HTTP posts use the standard library; 4xx answers other than 429
are not retried (the request itself is wrong: a revoked webhook, a bad secret)."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # SNS's message limit; webhooks get no more either


class PermanentError(Exception):
    """Retrying cannot help."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 1.0  # before the 2nd attempt; doubles each time
    timeout_seconds: float = 10.0


def with_retries(
    name: str,
    send: Callable[[], None],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call `send` until it succeeds, at most policy.attempts times."""
    delay = policy.backoff_seconds
    for attempt in range(1, policy.attempts + 1):
        try:
            send()
            return
        except PermanentError:
            raise
        except Exception as exc:
            if attempt == policy.attempts:
                raise
            log.warning(
                "delivery attempt failed outlet=%s attempt=%s error=%s: %s; retrying in %.1fs",
                name,
                attempt,
                type(exc).__name__,
                exc,
                delay,
            )
            if on_retry is not None:
                on_retry(name)
            sleep(delay)
            delay *= 2


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    """POST `body`; raise on a non-2xx answer (PermanentError for 4xx but 429)."""
    if len(body) > MAX_BODY_BYTES:
        raise PermanentError(f"message of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        detail = f"HTTP {exc.code} from {_host(url)}"
        if 400 <= exc.code < 500 and exc.code != 429:
            raise PermanentError(detail) from None
        raise ConnectionError(detail) from None
    except urllib.error.URLError as exc:
        raise ConnectionError(f"{_host(url)}: {exc.reason}") from None


def _host(url: str) -> str:
    """Where a URL points, without its path: webhook paths are credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def noop(*_: Any) -> None:
    return None
