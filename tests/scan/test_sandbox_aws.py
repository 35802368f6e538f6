"""The sandbox's moto answers one request at a time, so the scan's threads never build
ASTs concurrently inside it (CPython 3.11 can then fail with "AST constructor recursion
depth mismatch" and the scan records the account as an error)."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.routing import get_service_router

from scanner.sandbox_aws import one_request_at_a_time

THREADS = 8


class Peak:
    """How many threads were inside ast.parse at once, and how often it ran on threads."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.calls = 0
        self._lock = threading.Lock()

    def wrap(self, parse: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.active += 1
                self.calls += 1
                self.peak = max(self.peak, self.active)
            try:
                time.sleep(0.001)  # widen the window two threads would need to overlap
                return parse(*args, **kwargs)
            finally:
                with self._lock:
                    self.active -= 1

        return counted


def _calls_from_threads(peak: Peak, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto builds a service's werkzeug URL rules (ast.parse + compile) on its first request
    # and caches them: start from an empty cache so the threads really build them
    get_service_router.cache_clear()
    monkeypatch.setattr(ast, "parse", peak.wrap(ast.parse))
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    clients = [session.client(service) for service in ("iam", "kms", "sts", "backup")] * 2
    barrier = threading.Barrier(THREADS)

    def call(index: int) -> None:
        client = clients[index]
        barrier.wait()
        for _ in range(3):
            {
                "iam": lambda: client.list_roles(),
                "kms": lambda: client.list_keys(),
                "sts": lambda: client.get_caller_identity(),
                "backup": lambda: client.list_backup_vaults(),
            }[client.meta.service_model.service_name]()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(call, range(THREADS)))


def test_moto_dispatch_is_serialised(monkeypatch: pytest.MonkeyPatch) -> None:
    peak = Peak()
    with mock_aws(), one_request_at_a_time():
        _calls_from_threads(peak, monkeypatch)
    assert peak.calls > 0  # moto did build ASTs on the worker threads
    assert peak.peak == 1  # never two at once (without the lock: up to THREADS)
