"""The organization walk on a thread of its own, handing out each account to scan as soon
as its parent OU's listing returns, so that the scan reads accounts while the rest of the
tree (and the SCP/RCP attachments) are still being listed.

Once the walk is done, the accounts of the final list that were not handed out early (all
of them with `report.owner_tag`, whose tags are read after the walk) follow.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from scanner.aws.organizations import discover

if TYPE_CHECKING:
    from scanner.aws.session import AwsSessions
    from scanner.config import Settings
    from scanner.model import Account, Organization


class WalkFeed:
    def __init__(self, sessions: AwsSessions, settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        # the whole organization, or the error that stopped the walk
        self.organization: Future[Organization] = Future()
        self._found: queue.SimpleQueue[Account] = queue.SimpleQueue()
        self._given: set[str] = set()
        self._rest: list[Account] | None = None  # after the walk: not yet handed out
        self._thread = threading.Thread(target=self._walk, name="org-discovery", daemon=True)

    def start(self) -> WalkFeed:
        self._thread.start()
        return self

    def _walk(self) -> None:
        try:
            found = discover(self.sessions, self.settings, on_account=self._found.put)
        except BaseException as exc:  # handed to the scan thread
            self.organization.set_exception(exc)
        else:
            self.organization.set_result(found)

    @property
    def walked(self) -> bool:
        return self.organization.done()

    def take(self) -> Account | None:
        """The next account to scan, if one is known now (never waits)."""
        try:
            account = self._found.get_nowait()
        except queue.Empty:
            return self._take_rest()
        self._given.add(account.id)
        return account

    def _take_rest(self) -> Account | None:
        if not self.walked or self.organization.exception() is not None:
            return None
        if self._rest is None:
            accounts = self.organization.result().accounts
            self._rest = [account for account in accounts if account.id not in self._given]
            self._rest.reverse()
        return self._rest.pop() if self._rest else None

    def exhausted(self) -> bool:
        """The walk is done and every account was handed out."""
        if not self.walked or not self._found.empty():
            return False
        return self.organization.exception() is not None or self._rest == []

    def wait(self, timeout: float) -> None:
        """Until the walk ends or `timeout` passes (accounts it finds meanwhile are seen
        at the next take)."""
        try:
            self.organization.exception(timeout=timeout)
        except TimeoutError:
            pass
