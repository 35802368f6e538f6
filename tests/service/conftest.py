"""A moto server holding the sandbox organization, shared by the serve end-to-end tests
(seeding takes seconds; the tests only read it, except `break_account` on purpose)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from processes import free_port
from serve_harness import MotoSandbox


@pytest.fixture(scope="session")
def moto_sandbox() -> Iterator[MotoSandbox]:
    from moto.server import ThreadedMotoServer

    from scanner.sandbox import seed_sandbox_organization
    from scanner.sandbox_aws import one_request_at_a_time

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto = MotoSandbox(endpoint=f"http://127.0.0.1:{port}", sandbox=None)
    # the server answers the scanners' threads one request at a time (scanner/sandbox_aws.py)
    with one_request_at_a_time():
        server.start()
        try:
            with moto.client_env():
                moto.sandbox = seed_sandbox_organization(moto.session())
            yield moto
        finally:
            server.stop()
