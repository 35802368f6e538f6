"""The event-delivery templates: cfn-lint clean, both rules match exactly the calls that can
change a verdict (scanner.events.catalog), the queue has its dead-letter queue, only the
rule may send to it and only the organization's accounts may put events on the bus; the
scanner's policy gains exactly the SQS actions the consumer makes."""

from __future__ import annotations

from pathlib import Path

from cfnlint.decode import cfn_yaml
from deploy_tools import REPO_ROOT, run, tool

from scanner.aws.permissions import EVENT_QUEUE_ACTIONS
from scanner.config import Settings
from scanner.events.catalog import event_pattern
from scanner.iam_policy import queue_arn, scanner_policy

QUEUE = REPO_ROOT / "deploy" / "event-queue.yaml"
FORWARDING = REPO_ROOT / "deploy" / "member-event-forwarding.yaml"


def _resources(path: Path) -> dict:
    return cfn_yaml.load(str(path))["Resources"]


def test_cfn_lint_passes_on_the_event_templates() -> None:
    result = run(tool("cfn-lint"), str(QUEUE), str(FORWARDING), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_rules_match_exactly_the_catalogued_calls() -> None:
    central = _resources(QUEUE)["VerdictChangingCalls"]["Properties"]
    member = _resources(FORWARDING)["ForwardVerdictChangingCalls"]["Properties"]
    assert central["EventPattern"] == event_pattern()
    assert member["EventPattern"] == event_pattern()
    assert central["Targets"] == [
        {"Id": "vaultscan-queue", "Arn": {"Fn::GetAtt": ["Queue", "Arn"]}}
    ]
    [target] = member["Targets"]
    assert target["Arn"] == {"Ref": "CentralEventBusArn"}


def test_the_queue_has_a_dead_letter_queue_and_only_the_rule_sends_to_it() -> None:
    resources = _resources(QUEUE)
    redrive = resources["Queue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    [statement] = resources["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["VerdictChangingCalls", "Arn"]}}
    }
    bus = resources["OrganizationPutEvents"]["Properties"]["Statement"]
    assert bus["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}


def test_the_forwarding_role_may_only_put_events_on_the_central_bus() -> None:
    role = _resources(FORWARDING)["ForwardingRole"]["Properties"]
    [policy] = role["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": {"Ref": "CentralEventBusArn"},
    }


def test_the_scanner_policy_gains_exactly_the_queue_actions() -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/111122223333/vaultscan-events"
    without = scanner_policy(Settings())["Statement"]
    assert not any("sqs:" in str(s["Action"]) for s in without)
    statements = scanner_policy(Settings(events={"queue_url": url}))["Statement"]
    [queue] = [s for s in statements if s.get("Sid") == "ConsumeEventQueue"]
    assert sorted(queue["Action"]) == sorted(EVENT_QUEUE_ACTIONS)
    assert queue["Resource"] == "arn:aws:sqs:eu-west-1:111122223333:vaultscan-events"
    assert queue_arn(url, "aws-us-gov").startswith("arn:aws-us-gov:sqs:")
