"""`vaultscan explain`: exit codes, JSON shape, human output, malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_builders import ALLOW_ALL, ROOT_TRUST, policy, scenario_dict, stmt

from scanner.cli import main


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def allowed_case(name: str = "ok") -> dict:
    data = scenario_dict(
        identity=[ALLOW_ALL], resource_policy=ROOT_TRUST, scps=[[policy(stmt(Sid="FullAWSAccess"))]]
    )
    data.update(name=name, expected="allowed", deciding_layer=None)
    return data


def denied_case(name: str = "denied") -> dict:
    data = scenario_dict(
        identity=[policy(stmt("Deny", "kms:CreateGrant", Sid="NoGrants"))],
        resource_policy=ROOT_TRUST,
    )
    data.update(name=name, expected="explicitDeny", deciding_layer="identity")
    return data


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_all_agree_exits_0_with_spec_shape(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "cases.json", [allowed_case(), denied_case()])
    code, out, _ = run(capsys, "--json", str(path))
    assert code == 0
    answers = json.loads(out)
    assert [a["name"] for a in answers] == ["ok", "denied"]
    first = answers[0]
    assert first["decision"] == "allowed" and first["deciding_layer"] is None
    assert first["expected"] == "allowed" and first["agrees"] is True
    full_access = {"policy": "level 0 #0", "sid": "FullAWSAccess", "index": 0, "effect": "Allow"}
    assert first["layers"][0] == {
        "layer": "scp",
        "decision": "allowed",
        "statements": [full_access],
        # the spec's fields, extended with the result of each level of the path
        "levels": [{"index": 0, "decision": "allowed", "allowing": [full_access], "denying": []}],
    }
    second = answers[1]
    assert (second["decision"], second["deciding_layer"]) == ("explicitDeny", "identity")
    [identity] = [layer for layer in second["layers"] if layer["layer"] == "identity"]
    assert identity["statements"][0]["sid"] == "NoGrants"


def test_no_expected_means_no_agrees_key(tmp_path: Path, capsys) -> None:
    data = allowed_case()
    del data["expected"]
    code, out, _ = run(capsys, "--json", str(write(tmp_path / "a.json", data)))
    assert code == 0
    assert "agrees" not in json.loads(out)[0] and "expected" not in json.loads(out)[0]


def test_disagreement_exits_1(tmp_path: Path, capsys) -> None:
    wrong = allowed_case("wrong")
    wrong["expected"] = "implicitDeny"
    folder = tmp_path / "cases"
    folder.mkdir()
    write(folder / "a.json", allowed_case())
    write(folder / "b.json", wrong)
    code, out, _ = run(capsys, "--json", str(folder))
    assert code == 1
    assert [a["agrees"] for a in json.loads(out)] == [True, False]


def test_wrong_deciding_layer_disagrees(tmp_path: Path, capsys) -> None:
    data = denied_case()
    data["deciding_layer"] = "scp"
    code, _, _ = run(capsys, str(write(tmp_path / "a.json", data)))
    assert code == 1


def test_malformed_scenario_names_file_and_field_and_batch_continues(
    tmp_path: Path, capsys
) -> None:
    broken = allowed_case("broken")
    broken["policies"]["identity"] = [{"Statement": [{"Action": "*", "Resource": "*"}]}]
    bad = write(tmp_path / "bad.json", broken)
    good = write(tmp_path / "good.json", denied_case())
    code, out, err = run(capsys, "--json", str(bad), str(good))
    assert code == 2
    assert "bad.json" in err and "policies.identity[0].Statement[0].Effect" in err
    answers = json.loads(out)
    assert answers[0]["field"] == "policies.identity[0].Statement[0].Effect"
    assert answers[1]["decision"] == "explicitDeny"


def test_unreadable_json_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.json"
    path.write_text("[{")
    code, out, err = run(capsys, str(path))
    assert code == 2 and "x.json" in err and "invalid JSON" in err
    assert out == ""  # no answer, not even an empty line


def test_human_output_puts_the_decision_first_then_layers(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, str(write(tmp_path / "a.json", denied_case())))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("denied")
    assert lines[1].strip() == "decision: explicitDeny by identity"
    assert any("Identity policies [identity]: explicitDeny" in line for line in lines)
    assert any('Deny  #0, statement #0 Sid "NoGrants"' in line for line in lines)
    assert any("Key policy [resource_policy]: allowed" in line for line in lines)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("deep_object.json", b'{"a":' * 70 + b"1" + b"}" * 70, "nested too deeply at a.a.a"),
        ("bignum.json", b'{"request": {"x": ' + b"9" * 5000 + b"}}", "4300 digits"),
        ("latin1.json", b'{"name": "caf\xe9"}', "not UTF-8 text (byte 0xe9 at offset 13)"),
        (
            "surrogate.json",
            b'{"request": {"principal_arn": "\\ud800"}}',
            "lone surrogate \\ud800 at request.principal_arn",
        ),
    ],
)
def test_undecodable_file_is_its_own_error_and_the_rest_is_answered(
    tmp_path: Path, capsys, name: str, content: bytes, message: str
) -> None:
    folder = tmp_path / "cases"
    folder.mkdir()
    write(folder / "a_good.json", allowed_case())
    (folder / name).write_bytes(content)
    write(folder / "z_good.json", denied_case())
    code, out, err = run(capsys, "--json", str(folder))
    assert code == 2
    answers = json.loads(out)
    assert [a.get("name") for a in answers if "decision" in a] == ["ok", "denied"]
    [error] = [a for a in answers if "error" in a]
    assert error["origin"].endswith(name)
    assert message in error["error"]
    assert message in err and "Traceback" not in err
