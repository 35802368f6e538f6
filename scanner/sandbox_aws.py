"""The sandbox's AWS (moto) answers one request at a time.

vaultscan scans accounts on several threads; with moto in the same process, moto's own
request handling then runs on those threads too. moto routes each request through
werkzeug URL rules, which werkzeug compiles with `ast.parse` and `compile`; CPython 3.11
keeps the AST constructor's recursion depth in interpreter-wide state, so two threads
building ASTs at once can fail with `SystemError: AST constructor recursion depth
mismatch` or a spurious `RecursionError` (python/cpython#106905). The scanner records
that account as an error and the sandbox run turns "partial" at random. moto's in-memory
backends are not written for concurrent use either.

So the sandbox serialises moto's dispatch: the scanner keeps its threads (and its
concurrency is still exercised), while the fake AWS handles one request at a time, as a
single-threaded server would. Raising the recursion limit would not help: the error is a
race on a shared counter, not a deep tree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

_dispatch_lock = threading.RLock()  # re-entrant: a moto handler may call another backend


@contextmanager
def one_request_at_a_time() -> Iterator[None]:
    """While active, moto (in this process, in-memory or as a threaded server) handles
    one request at a time. Needs moto, the optional extra vaultscan[demo]."""
    # moto is optional (vaultscan[demo]): imported only by the demo and the tests
    from moto.core.responses import BaseResponse

    original: Callable[..., Any] = BaseResponse._dispatch

    def serialised(self: BaseResponse, *args: Any, **kwargs: Any) -> Any:
        with _dispatch_lock:
            return original(self, *args, **kwargs)

    with mock.patch.object(BaseResponse, "_dispatch", serialised):
        yield
