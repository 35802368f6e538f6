"""The IAM templates under deploy/ and `vaultscan iam-policy` grant exactly the actions
listed in scanner.aws.permissions, and only the scanner (with the external id) gets in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import cfn_yaml
from deploy_tools import REPO_ROOT, run, tool

from scanner.aws.permissions import MEMBER_READ_ACTIONS, ORG_READ_ACTIONS
from scanner.cli import main
from scanner.config import Settings
from scanner.iam_policy import member_read_policy, org_read_policy, scanner_policy

TEMPLATES = {
    "member": (REPO_ROOT / "deploy" / "member-read-role.yaml", "ReadRole", MEMBER_READ_ACTIONS),
    "org": (
        REPO_ROOT / "deploy" / "org-reader-role.yaml",
        "OrganizationReaderRole",
        ORG_READ_ACTIONS,
    ),
}


def role_properties(kind: str) -> dict[str, Any]:
    path, resource, _ = TEMPLATES[kind]
    template = cfn_yaml.load(str(path))
    role = template["Resources"][resource]
    assert role["Type"] == "AWS::IAM::Role"
    return role["Properties"]


def granted_actions(properties: dict[str, Any]) -> list[str]:
    actions: list[str] = []
    for policy in properties.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            value = statement["Action"]
            actions.extend([value] if isinstance(value, str) else value)
    assert "ManagedPolicyArns" not in properties, "managed policies would grant more"
    return actions


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_template_grants_exactly_the_source_actions(kind: str) -> None:
    actions = granted_actions(role_properties(kind))
    assert len(actions) == len(set(actions)), "an action is listed twice"
    assert sorted(actions) == sorted(TEMPLATES[kind][2])
    assert not any("*" in action for action in actions)


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_template_trusts_only_the_scanner_with_the_external_id(kind: str) -> None:
    path = TEMPLATES[kind][0]
    parameters = cfn_yaml.load(str(path))["Parameters"]
    assert parameters["ExternalId"]["NoEcho"] is True
    assert "Default" not in parameters["ExternalId"]
    assert re.match(
        parameters["ScannerRoleArn"]["AllowedPattern"], "arn:aws:iam::111122223333:role/x"
    )
    [statement] = role_properties(kind)["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"AWS": {"Ref": "ScannerRoleArn"}}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}


def test_member_template_defaults_match_the_scanner_settings() -> None:
    parameters = cfn_yaml.load(str(TEMPLATES["member"][0]))["Parameters"]
    member = Settings().member
    assert parameters["RoleName"]["Default"] == member.read_role_name
    assert parameters["RolePath"]["Default"] == member.read_role_path


def test_cfn_lint_passes_on_the_templates() -> None:
    paths = [str(path) for path, _, _ in TEMPLATES.values()]
    result = run(tool("cfn-lint"), *paths, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    text = TEMPLATES["member"][0].read_text().replace("!Ref ScannerRoleArn", "!Ref NoSuchParam")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    result = run(tool("cfn-lint"), str(broken), check=False)
    assert result.returncode != 0
    assert "NoSuchParam" in result.stdout


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_iam_policy_command_prints_the_template_policy(
    kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./vaultscan.yaml
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    assert main(["iam-policy", "--role", kind, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    [template_policy] = role_properties(kind)["Policies"]
    assert printed == template_policy["PolicyDocument"]
    assert printed == (member_read_policy() if kind == "member" else org_read_policy())


def test_scanner_policy_assumes_the_configured_roles(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    org_role = "arn:aws:iam::111122223333:role/VaultscanOrganizationReader"
    config = tmp_path / "vaultscan.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "organization": {"role_arn": org_role},
                "member": {"read_role_name": "ScanRead", "read_role_path": "/audit/"},
            }
        )
    )
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    assert (
        main(["iam-policy", "--role", "scanner", "--format", "yaml", "--config", str(config)]) == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["Statement"] == [
        {
            "Sid": "AssumeMemberReadRoles",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole"],
            "Resource": "arn:aws:iam::*:role/audit/ScanRead",
        },
        {
            "Sid": "AssumeOrganizationReader",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole"],
            "Resource": org_role,
        },
    ]


def test_scanner_policy_reads_organizations_itself_without_an_org_role() -> None:
    settings = Settings(organization={"partition": "aws-us-gov"})
    statements = scanner_policy(settings)["Statement"]
    assert statements[0]["Resource"] == "arn:aws-us-gov:iam::*:role/VaultscanReadRole"
    assert statements[1]["Action"] == sorted(ORG_READ_ACTIONS)


def test_iam_policy_command_reports_a_bad_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "vaultscan.yaml"
    config.write_text("member: {read_role_nam: typo}\n")
    assert main(["iam-policy", "--role", "scanner", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaultscan iam-policy: invalid configuration")  # like every command
    assert "read_role_nam" in err
