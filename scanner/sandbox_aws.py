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

It also gives moto what it cannot be asked for through its API: AWS managed keys. moto
creates every key as customer managed; `aws_managed_backup_keys` marks the keys created
with AWS Backup's own description as AWS managed, in whichever process moto runs (the
demo's and the tests' in-process moto, or a moto server process started through
`python -m scanner.sandbox_aws`).
"""

from __future__ import annotations

import sys
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


# The description AWS gives the aws/backup key it creates on first use.
AWS_BACKUP_KEY_DESCRIPTION = "Default key that protects my Backup data when no other key is defined"
_marking = threading.Lock()


def aws_managed_backup_keys() -> None:
    """From now on, moto (in this process) creates keys described as AWS Backup's default
    key as AWS managed (KeyManager "AWS"), as AWS itself does. Idempotent."""
    from moto.kms.models import Key

    with _marking:
        if getattr(Key.__init__, "_vaultscan_marks_aws_managed", False):
            return
        original: Callable[..., None] = Key.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if self.description == AWS_BACKUP_KEY_DESCRIPTION:
                self.key_manager = "AWS"

        init._vaultscan_marks_aws_managed = True  # type: ignore[attr-defined]
        Key.__init__ = init  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """`python -m scanner.sandbox_aws [moto.server options]`: a moto server process that
    keeps the sandbox's AWS managed keys AWS managed."""
    from moto.server import main as moto_server

    aws_managed_backup_keys()
    moto_server(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
