"""Discovery with several AWS Organizations requests in flight.

Organizations throttles per operation (ListOrganizationalUnitsForParent 5/s,
ListAccountsForParent 8/s, ... "Throttling limits" in
https://docs.aws.amazon.com/organizations/latest/userguide/orgs_reference_limits.html), so
each operation is its own stream: walked one call after another, discovery of a large
organization takes the sum of the streams' times; with the calls in flight together, the
time of the slowest. The calls made are exactly those of the one-by-one walk, and the
accounts come out in the same (breadth-first) order.

SCP/RCP attachments listed by policy (ListTargetsForPolicy, one paginated listing per
policy) start while the tree is still being walked, as soon as the walk has found more
targets than there are policies: from then on listing by policy is certainly the cheaper
way, whatever else the walk finds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from scanner.model import Account, NamedPolicy, OrgUnit

# requests in flight during the walk; the Organizations client's connection pool is sized
# for them (scanner/aws/session.py)
WALK_WORKERS = 6
POLICY_WORKERS = 3

Path = tuple[OrgUnit, ...]


class Walker(Protocol):
    """The Organizations reads the walk makes (scanner.aws.organizations._Walker)."""

    def items(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]: ...

    def parent_accounts(self, path: Path) -> list[Account]: ...

    def child_units(self, path: Path, excluded_ous: set[str]) -> list[Path]: ...

    def policies_for_target(self, target_id: str, policy_type: str) -> list[NamedPolicy]: ...

    def describe(self, policy_id: str) -> NamedPolicy: ...


class _Tasks:
    """Tasks that may submit further tasks; wait() returns once all are done and raises the
    first error any of them raised (the others are not started)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.done = threading.Condition()
        self.outstanding = 0
        self.error: BaseException | None = None

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        with self.done:
            if self.error is not None:
                return
            self.outstanding += 1
        self.pool.submit(self._run, function, *args)

    def _run(self, function: Callable[..., None], *args: Any) -> None:
        try:
            function(*args)
        except BaseException as exc:  # handed to the waiting thread
            with self.done:
                self.error = self.error or exc
        finally:
            with self.done:
                self.outstanding -= 1
                self.done.notify_all()

    def wait(self) -> None:
        with self.done:
            while self.outstanding:
                self.done.wait()
        if self.error is not None:
            raise self.error


def walk(
    walker: Walker,
    root: OrgUnit,
    excluded_ous: set[str],
    on_account: Callable[[Account], None] | None = None,
    workers: int = WALK_WORKERS,
) -> list[Account]:
    """Every active account under `root` (excluded OU subtrees skipped) with its OU path;
    `on_account` is called for each as soon as it is found, from a walk thread."""
    children: dict[str, list[Path]] = {}
    accounts_of: dict[str, list[Account]] = {}
    lock = threading.Lock()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="org-walk") as pool:
        tasks = _Tasks(pool)

        def list_accounts(path: Path) -> None:
            found = walker.parent_accounts(path)
            with lock:
                accounts_of[path[-1].id] = found
            for account in found:
                if on_account is not None:
                    on_account(account)

        def list_units(path: Path) -> None:
            units = walker.child_units(path, excluded_ous)
            with lock:
                children[path[-1].id] = units
            for child in units:
                visit(child)

        def visit(path: Path) -> None:
            tasks.submit(list_accounts, path)
            tasks.submit(list_units, path)

        visit((root,))
        tasks.wait()

    found: list[Account] = []
    queue: deque[Path] = deque([(root,)])
    while queue:
        path = queue.popleft()
        found.extend(accounts_of[path[-1].id])
        queue.extend(children[path[-1].id])
    return found


class PolicyListing:
    """The policies of one type and where they are attached, read the cheaper way:
    by policy when there are more targets than policies, else by target."""

    def __init__(self, walker: Walker, policy_type: str) -> None:
        self.walker = walker
        self.policy_type = policy_type
        self.summaries: list[dict[str, Any]] | None = None
        self.targets: set[str] = set()
        self._lock = threading.Lock()
        self._by_policy: Future[dict[str, list[str]]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="org-policies")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def add_targets(self, targets: list[str]) -> None:
        """Targets found by the walk so far; starts the listing by policy once it is
        certain to be the cheaper one."""
        with self._lock:
            if self.summaries is None:
                self.summaries = self.walker.items(
                    "ListPolicies", "Policies", Filter=self.policy_type
                )
            self.targets.update(targets)
            if self._by_policy is None and len(self.targets) > len(self.summaries):
                self._by_policy = self._pool.submit(self._list_by_policy, list(self.summaries))

    def _list_by_policy(self, summaries: list[dict[str, Any]]) -> dict[str, list[str]]:
        def targets_of(summary: dict[str, Any]) -> list[str]:
            listed = self.walker.items("ListTargetsForPolicy", "Targets", PolicyId=summary["Id"])
            return [target["TargetId"] for target in listed]

        workers = max(1, min(POLICY_WORKERS, len(summaries)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="org-targets") as pool:
            listed = list(pool.map(targets_of, summaries))
        return {summary["Id"]: found for summary, found in zip(summaries, listed, strict=True)}

    def attachments(self, targets: list[str]) -> dict[str, list[NamedPolicy]]:
        """Policies attached to each of `targets` (the final list, after the walk)."""
        self.add_targets(targets)
        summaries = self.summaries or []
        if len(summaries) >= len(targets):
            return {
                target: self.walker.policies_for_target(target, self.policy_type)
                for target in targets
            }
        assert self._by_policy is not None  # started by add_targets: more targets than policies
        listing = self._by_policy.result()
        wanted = set(targets)
        used = [s["Id"] for s in summaries if wanted.intersection(listing[s["Id"]])]
        described = dict(zip(used, map(self.walker.describe, used), strict=True))
        attached: dict[str, list[NamedPolicy]] = {target: [] for target in targets}
        for summary in summaries:
            for target in listing[summary["Id"]]:
                if target in attached:
                    attached[target].append(described[summary["Id"]])
        return attached
