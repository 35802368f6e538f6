"""Every verdict for one collected account: per region its keys' state, and per role
each required action of the profiles (once per key for key actions)."""

from __future__ import annotations

from scanner.decide.key_state import (
    NOT_CREATED_STATES,
    configured_alias,
    key_state_result,
    key_unusable_result,
)
from scanner.decide.naming import check_for
from scanner.decide.scenarios import OrgPath, ask, policies_scenario, rcp_path_for
from scanner.decide.verdict import Asked, decide_request
from scanner.model import (
    ROLE_PRESENT_CHECK,
    AccountCollection,
    CheckId,
    CheckResult,
    Fix,
    KmsKey,
    Organization,
    Role,
    SimulatorAnswer,
)
from scanner.policy import Scenario
from scanner.profiles import Profile, Requirement
from scanner.request_context import ContextBuilder

GLOBAL_REGION = "global"


class AccountContext:
    """What every request of one account shares: its organization paths, the parts of
    the request contexts several checks share, the RCP path per key, and per (role, key)
    the scenario whose compiled policies the next request reuses."""

    def __init__(
        self,
        organization: Organization,
        collection: AccountCollection,
        partition: str,
        contexts: ContextBuilder | None = None,
    ):
        self.organization = organization
        self.collection = collection
        self.partition = partition
        self.account = collection.account
        self.scps = OrgPath.of(organization, self.account, "scp")
        self.rcps = OrgPath.of(organization, self.account, "rcp")
        self._scenarios: dict[tuple[str, str | None], Scenario] = {}
        self._contexts = _builder_for(organization, collection, partition, contexts)
        self._rcps: dict[str | None, OrgPath] = {}
        self._checks: dict[tuple[str, str | None], tuple[CheckId, str]] = {}

    def asked(self, role: Role, region: str, requirement: Requirement, key: KmsKey | None) -> Asked:
        account = self.account
        resource, context = self._contexts.question_for(role, region, requirement, key)
        check, check_text = self._check_for(requirement.action, key)
        rcps = self._rcps_for(key)
        cache_key = (role.arn, key.arn if key is not None else None)
        base = self._scenarios.get(cache_key)
        if base is None:
            base = policies_scenario(role, account, self.scps, rcps, key)
        name = f"{account.id} {region} {role.name} {check_text}"
        scenario = ask(
            base, account, requirement.action, resource, context.values, key, name, context.parts
        )
        self._scenarios[cache_key] = scenario  # its compiled policies serve the next one
        return Asked(
            account,
            region,
            role,
            requirement.action,
            resource,
            check,
            scenario,
            self.scps,
            rcps,
            key,
            context,
        )

    def _check_for(self, action: str, key: KmsKey | None) -> tuple[CheckId, str]:
        """The check a requirement answers (per action and key, the same for every role
        and region), with its text."""
        cache_key = (action, key.arn if key is not None else None)
        known = self._checks.get(cache_key)
        if known is None:
            check = check_for(action, key)
            known = self._checks[cache_key] = (check, str(check))
        return known

    def _rcps_for(self, key: KmsKey | None) -> OrgPath:
        key_arn = key.arn if key is not None else None
        rcps = self._rcps.get(key_arn)
        if rcps is None:
            rcps = self._rcps[key_arn] = rcp_path_for(
                self.organization, self.account, key, self.rcps
            )
        return rcps


def _builder_for(
    organization: Organization,
    collection: AccountCollection,
    partition: str,
    contexts: ContextBuilder | None,
) -> ContextBuilder:
    """The account's request contexts: those collect built for the simulator when given
    (they must be this account's, at its scan time), else new ones."""
    if contexts is None:
        return ContextBuilder(organization, collection.account, partition, collection.scanned_at)
    same = (
        contexts.organization is organization
        and contexts.account == collection.account
        and (contexts.partition, contexts.scanned_at) == (partition, collection.scanned_at)
    )
    if not same:
        raise ValueError(f"the request contexts given are not account {collection.account.id}'s")
    return contexts


def decide_account(
    organization: Organization,
    collection: AccountCollection,
    profiles: list[Profile],
    *,
    partition: str = "aws",
    regions: list[str] | None = None,
    contexts: ContextBuilder | None = None,
) -> list[CheckResult]:
    """Every verdict for one collected account (empty when the account could not be read).
    `contexts`: the request contexts collect built for the simulator, reused."""
    if collection.error:
        return []
    ctx = AccountContext(organization, collection, partition, contexts)
    regions = regions or sorted(
        set(collection.keys) | {region for _arn, region in collection.simulations}
    )
    results: dict[str, CheckResult] = {}
    if not collection.roles:
        no_role = _no_designated_role(collection)
        results[no_role.key] = no_role
    requirements = [req for profile in profiles for req in profile.requirements]
    for region in regions:
        for result in _region_results(ctx, region, requirements):
            results.setdefault(result.key, result)
    return list(results.values())


def _region_results(ctx: AccountContext, region: str, requirements: list[Requirement]):
    keys = ctx.collection.keys.get(region, [])
    for key in keys:
        yield key_state_result(ctx.account, key, configured_alias(key))
    for role in ctx.collection.roles:
        answers = ctx.collection.simulations.get((role.arn, region), [])
        for requirement in requirements:
            if not requirement.needs_key:
                yield decide_request(ctx.asked(role, region, requirement, None), answers)
                continue
            yield from _key_results(ctx, role, region, requirement, keys, answers)


def _key_results(
    ctx: AccountContext,
    role: Role,
    region: str,
    requirement: Requirement,
    keys: list[KmsKey],
    answers: list[SimulatorAnswer],
):
    for key in keys:
        if key.key_state in NOT_CREATED_STATES:
            continue  # nothing to check yet; the key-state check says why
        if key.key_policy is None or key.key_state == "Unreadable":
            yield key_unusable_result(ctx.account, role, region, requirement.action, key)
        else:
            yield decide_request(ctx.asked(role, region, requirement, key), answers)


def _no_designated_role(collection: AccountCollection) -> CheckResult:
    account = collection.account
    return CheckResult(
        account_id=account.id,
        region=GLOBAL_REGION,
        role_arn="",
        check=ROLE_PRESENT_CHECK,
        resource="",
        status="fail",
        message="No designated backup role was found in this account (settings: roles).",
        remediation=Fix(
            kind="create-designated-role",
            target=account.id,
            summary="Create the backup role, or adjust roles.names / tag / path.",
        ),
    )
