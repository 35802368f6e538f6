"""Parsing, the catalog, event -> work and coalescing: pure, no AWS, no database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from events_helpers import cloudtrail_event

from scanner.config import Settings
from scanner.events.catalog import CATALOG, NO_EFFECT, event_pattern
from scanner.events.coalesce import coalesce
from scanner.events.parse import MalformedEvent, parse_message
from scanner.events.scope import FullScan, Ignored, KeyChange, PolicyChange, Rescan, work_for

ACCOUNT = "111122223333"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
SETTINGS = Settings(roles={"names": ["*Backup*"]})


def work(body: str, settings: Settings = SETTINGS):
    return work_for(parse_message(body), settings)


def test_parse_reads_the_cloudtrail_record():
    event = parse_message(
        cloudtrail_event("iam", "PutRolePolicy", ACCOUNT, {"roleName": "BackupOperator"})
    )
    assert (event.service, event.name, event.account_id) == ("iam", "PutRolePolicy", ACCOUNT)
    assert event.request == {"roleName": "BackupOperator"}
    assert event.time.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"detail-type": "Scheduled Event", "detail": {}}', "detail-type"),
        ('{"detail-type": "AWS API Call via CloudTrail"}', "detail is missing"),
        (
            '{"detail-type": "AWS API Call via CloudTrail", "detail": {"eventSource": '
            '"iam.amazonaws.com", "eventName": "TagRole", "recipientAccountId": "12"}}',
            "12-digit",
        ),
        (
            '{"detail-type": "AWS API Call via CloudTrail", "detail": {"eventSource": '
            '"iam.amazonaws.com", "eventName": "TagRole", "recipientAccountId": "111122223333",'
            ' "eventTime": "yesterday"}}',
            "ISO 8601",
        ),
    ],
)
def test_malformed_messages_say_what_is_wrong(body, says):
    with pytest.raises(MalformedEvent, match=says):
        parse_message(body)


def test_role_events_rescan_one_role_and_skip_roles_that_cannot_be_designated():
    body = cloudtrail_event("iam", "AttachRolePolicy", ACCOUNT, {"roleName": "BackupOperator"})
    assert work(body) == Rescan(ACCOUNT, "BackupOperator")
    other = cloudtrail_event("iam", "AttachRolePolicy", ACCOUNT, {"roleName": "WebServer"})
    assert isinstance(work(other), Ignored)
    # a tag can designate any role: then nothing is skipped by name
    tagged = Settings(roles={"names": ["*Backup*"], "tag": {"key": "backup"}})
    assert work(other, tagged) == Rescan(ACCOUNT, "WebServer")


def test_failed_calls_and_calls_without_effect_are_ignored():
    failed = cloudtrail_event(
        "iam", "PutRolePolicy", ACCOUNT, {"roleName": "BackupOperator"}, error_code="AccessDenied"
    )
    assert "failed" in work(failed).reason
    assert isinstance(work(cloudtrail_event("kms", "Decrypt", ACCOUNT, {})), Ignored)
    assert isinstance(work(cloudtrail_event("kms", "CreateGrant", ACCOUNT, {})), Ignored)


def test_key_org_and_backup_events_map_to_their_reach():
    arn = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    disabled = cloudtrail_event(
        "kms", "DisableKey", ACCOUNT, {"keyId": "1234abcd"}, response={"keyId": arn}
    )
    assert work(disabled) == KeyChange(ACCOUNT, "us-east-1", arn)
    update = cloudtrail_event("organizations", "UpdatePolicy", ACCOUNT, {"policyId": "p-1"})
    assert work(update) == PolicyChange("p-1")
    attach = cloudtrail_event(
        "organizations", "AttachPolicy", ACCOUNT, {"policyId": "p-1", "targetId": "ou-ab-12345678"}
    )
    assert work(attach) == PolicyChange("p-1", "ou-ab-12345678")
    move = cloudtrail_event("organizations", "MoveAccount", ACCOUNT, {"accountId": "444455556666"})
    assert work(move) == Rescan("444455556666")
    enable = cloudtrail_event(
        "organizations", "EnablePolicyType", ACCOUNT, {"policyType": "RESOURCE_CONTROL_POLICY"}
    )
    assert isinstance(work(enable), FullScan)
    vault = cloudtrail_event("backup", "CreateBackupVault", ACCOUNT, {"backupVaultName": "v"})
    assert work(vault) == Rescan(ACCOUNT)


def test_fifty_role_changes_in_one_account_are_one_rescan():
    works = [Rescan(ACCOUNT, f"Backup{n}") for n in range(50)]
    plan = coalesce(works)
    assert list(plan.rescans) == [ACCOUNT]
    assert plan.rescans[ACCOUNT] == {f"Backup{n}" for n in range(50)}
    assert (plan.units, plan.coalesced) == (1, 49)
    # an account-wide change of the same account widens it to the whole account
    plan.add(Rescan(ACCOUNT))
    assert plan.rescans[ACCOUNT] is None and plan.coalesced == 50


def test_duplicate_deliveries_coalesce():
    change = PolicyChange("p-1", "r-abcd")
    plan = coalesce([change, change, KeyChange(ACCOUNT, "us-east-1", "k"), FullScan("x")])
    assert (plan.units, plan.coalesced) == (3, 1)


def test_docs_list_exactly_the_catalog():
    text = DOCS.read_text()
    rows = set(re.findall(r"^\| `(\w+)` \| (\w+) \|", text, flags=re.MULTILINE))
    listed = {(name, service) for name, service in rows}
    expected = {(name, source.split(".")[0]) for source, name in CATALOG}
    expected |= {(name, source.split(".")[0]) for source, name in NO_EFFECT}
    assert listed == expected


def test_the_event_pattern_matches_every_catalogued_call():
    pattern = event_pattern()
    assert set(pattern["detail"]["eventName"]) == {name for _, name in CATALOG}
    assert "aws.organizations" in pattern["source"]
