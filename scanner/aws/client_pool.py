"""Idle member-account clients, handed to the next account with its own credentials.

botocore fixes a client's credentials when the client is made and offers no public way to
change them; making a new client per account costs about 8 ms of CPU (its class, a copy
of the session's event handlers, its endpoint) where the request itself costs 1-3 ms. A
client that one account has finished with is therefore given the next account's
credentials: the request signer reads them from its `_credentials` attribute at every
request (botocore.signers.RequestSigner.get_auth_instance), so replacing that object
makes every later request sign as the new account. A client is used by one account at a
time, so no request is ever signed with another account's credentials; should a botocore
release drop the attribute, clients are simply not reused
(tests/aws/test_aws_session.py checks the signature of a reused client).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from botocore.credentials import Credentials as BotocoreCredentials


class Credentials(Protocol):
    """An assumed role's keys (scanner.aws.session.Credentials)."""

    access_key_id: str
    secret_access_key: str
    session_token: str


class IdleClients:
    """Clients no account uses, by (service, region); at most `limit` of each kept.
    Callers hold AwsSessions' client lock, this lock only guards the lists."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()

    def put(self, service: str, region: str, client: Any) -> None:
        """Keep `client` for a later account, or close it when enough are kept."""
        with self._lock:
            idle = self._idle.setdefault((service, region), [])
            if len(idle) < self.limit and _signer_of(client) is not None:
                idle.append(client)
                return
        client.close()

    def take(self, service: str, region: str, credentials: Credentials) -> Any | None:
        """An idle client of `service` in `region` now signing with `credentials`, or None."""
        with self._lock:
            idle = self._idle.get((service, region))
            client = idle.pop() if idle else None
        signer = _signer_of(client)
        if signer is None:
            return None
        signer._credentials = BotocoreCredentials(
            credentials.access_key_id, credentials.secret_access_key, credentials.session_token
        )
        return client

    def __len__(self) -> int:
        with self._lock:
            return sum(len(clients) for clients in self._idle.values())


def _signer_of(client: Any) -> Any | None:
    """The client's request signer, when it keeps its credentials where this module
    replaces them."""
    signer = getattr(client, "_request_signer", None)
    return signer if signer is not None and hasattr(signer, "_credentials") else None
