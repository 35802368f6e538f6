"""Reading scenarios: validation errors name the origin and field; loading files,
arrays and folders; round trip to the input format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_builders import ALLOW_ALL, KEY, ROLE, ROOT_TRUST, SESSION, policy, scenario_dict, stmt

from scanner.policy import Scenario, ScenarioError, evaluate, load_scenarios


def error_of(data: object) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(data, origin="case.json")
    assert caught.value.origin == "case.json"
    return caught.value


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("request"), "request"),
        (lambda d: d["request"].pop("action"), "request.action"),
        (lambda d: d["request"].update(action="CreateGrant"), "request.action"),
        (lambda d: d["request"].update(principal_arn="BackupOperator"), "request.principal_arn"),
        (lambda d: d["request"].update(resource="arn:aws:s3:::bucket"), "request.resource_account"),
        (lambda d: d["request"].update(principal_account="1234"), "request.principal_account"),
        (lambda d: d["request"].update(context={"k": {"nested": 1}}), "request.context.k"),
        (lambda d: d["request"].update(acton="x"), "request.acton"),
        (lambda d: d.update(expected="allow"), "expected"),
        (lambda d: d.update(deciding_layer="kms"), "deciding_layer"),
        (lambda d: d.update(unexpected=1), "unexpected"),
        (lambda d: d["policies"].update(scps=[{"Statement": []}]), "policies.scps[0]"),
        (lambda d: d["policies"].update(identity={}), "policies.identity"),
        (lambda d: d["policies"].update(identity=["x"]), "policies.identity[0]"),
        (
            lambda d: d["policies"].update(identity=[{"Statement": [{}]}]),
            "policies.identity[0].Statement[0]",
        ),
        (
            lambda d: d["policies"].update(
                identity=[{"Statement": [{"Action": "*", "Resource": "*"}]}]
            ),
            "policies.identity[0].Statement[0].Effect",
        ),
        (
            lambda d: d["policies"].update(
                identity=[policy(stmt(Condition={"StringEqualz": {"a:b": "c"}}))]
            ),
            "policies.identity[0].Statement[0].Condition.StringEqualz",
        ),
        (
            lambda d: d["policies"].update(identity=[policy(stmt(action=[]))]),
            "policies.identity[0].Statement[0].Action",
        ),
        (
            lambda d: d["policies"].update(identity=[policy(stmt(action="Decrypt"))]),
            "policies.identity[0].Statement[0].Action[0]",
        ),
        (
            lambda d: d["policies"].update(identity=[policy(stmt(Principal="*"))]),
            "policies.identity[0].Statement[0].Principal",
        ),
        (
            lambda d: d["policies"].update(identity=[{"Version": "2021-01-01", "Statement": []}]),
            "policies.identity[0].Version",
        ),
        (
            lambda d: d["policies"].update(resource_policy=policy(stmt(Principal={"IAM": ROLE}))),
            "policies.resource_policy.Statement[0].Principal",
        ),
        (
            lambda d: d["policies"].update(
                resource_policy=policy(stmt(NotPrincipal={"AWS": ROLE}))
            ),
            "policies.resource_policy.Statement[0].NotPrincipal",
        ),
        (
            lambda d: d["policies"].update(
                permissions_boundary=policy(stmt(Condition={"NumericLessThan": {"k:n": "ten"}}))
            ),
            "policies.permissions_boundary.Statement[0].Condition.NumericLessThan.k:n",
        ),
        (
            lambda d: d["policies"].update(rcps=[[policy(stmt(Effect="allow"))]]),
            "policies.rcps[0][0].Statement[0].Effect",
        ),
    ],
)
def test_malformed_scenarios_name_the_field(mutate, field: str) -> None:
    data = scenario_dict(identity=[ALLOW_ALL], resource_policy=ROOT_TRUST)
    mutate(data)
    error = error_of(data)
    assert error.field == field, str(error)
    assert "case.json" in str(error) and field in str(error)


def test_not_an_object() -> None:
    assert error_of([1, 2]).field == ""


def test_accounts_are_derived_from_arns() -> None:
    scenario = Scenario.from_dict(scenario_dict(principal=SESSION))
    assert scenario.principal_account == "111122223333"
    assert scenario.resource_account == "111122223333"
    star = Scenario.from_dict(
        scenario_dict(resource="*", principal_account="444455556666", principal=ROLE)
    )
    assert star.resource_account == "444455556666"


def test_round_trip_keeps_the_input_format() -> None:
    data = scenario_dict(
        scps=[[ALLOW_ALL], [ALLOW_ALL]],
        identity=[ALLOW_ALL],
        resource_policy=ROOT_TRUST,
        context={"aws:PrincipalTag/team": "b"},
    )
    data.update(name="n", source="doc", expected="allowed", deciding_layer=None)
    scenario = Scenario.from_dict(data)
    out = scenario.to_dict()
    assert out == data
    assert json.loads(json.dumps(out)) == data
    assert Scenario.from_dict(out) == scenario


def test_compiled_policies_are_shared_between_scenarios() -> None:
    first = Scenario.from_dict(scenario_dict(identity=[ALLOW_ALL]))
    second = Scenario.from_dict(
        scenario_dict(identity=[json.loads(json.dumps(ALLOW_ALL))], action="kms:Decrypt")
    )
    assert first.policy_set().identity[0].policy is second.policy_set().identity[0].policy


def test_load_single_array_and_folder(tmp_path: Path) -> None:
    good = scenario_dict(identity=[ALLOW_ALL], resource_policy=ROOT_TRUST)
    single = tmp_path / "one.json"
    single.write_text(json.dumps({**good, "name": "single"}))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "b.json").write_text(json.dumps([{**good, "name": "b0"}, {"request": 1}]))
    (folder / "a.json").write_text("{not json")
    (folder / "ignored.txt").write_text("{}")
    loaded = load_scenarios([single, folder])
    assert [getattr(item, "name", None) for item in loaded] == ["single", None, "b0", None]
    assert isinstance(loaded[1], ScenarioError) and "invalid JSON" in str(loaded[1])
    assert loaded[1].origin.endswith("a.json")
    assert isinstance(loaded[3], ScenarioError)
    assert loaded[3].origin.endswith("b.json[1]") and loaded[3].field == "request"
    assert evaluate(loaded[0]).decision == "allowed"


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    [error] = load_scenarios([tmp_path / "absent.json"])
    assert isinstance(error, ScenarioError) and "cannot read" in str(error)


def test_key_policy_default_name() -> None:
    scenario = Scenario.from_dict(scenario_dict(resource=KEY, resource_policy=ROOT_TRUST))
    assert scenario.policy_set().resource_policy.name == "key policy"
