"""CSV for `results` and `report`: stable columns that survive a round trip through
Python's csv module, values included (commas, quotes, newlines)."""

from __future__ import annotations

import csv
import io
import json

from outlet_seed import record_scan

from exporters.csv_export import REPORT_COLUMNS, RESULT_COLUMNS, results_csv
from scanner import cli
from storage.repository import latest_results

A, B = "111111111111", "222222222222"


def _parse(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_results_csv_round_trips(engine):
    record_scan(
        engine,
        {
            (A, "kms:CreateGrant"): "fail",
            (A, "backup:CreateBackupVault"): "pass",
            (B, "kms:Decrypt"): "pass",
        },
    )
    rows = latest_results(engine, include_evidence=False)
    header, parsed = _parse(results_csv(rows))
    assert header == list(RESULT_COLUMNS)
    assert len(parsed) == len(rows) == 3
    failing = next(row for row in parsed if row["status"] == "fail")
    assert failing["account_id"] == A and failing["check"] == "kms:CreateGrant"
    assert failing["deciding_layer"] == "scp" and failing["statement"] == "DenyBackup"
    assert failing["ou_path"] == "Root/Prod"
    assert failing["fix_kind"] == "scp-narrow-deny"
    assert json.loads(failing["fix_statement"])["Sid"] == "DenyBackup"
    assert failing["fix_commands"].startswith("aws organizations update-policy")
    assert failing["disagreement"] == "false"
    passing = [row for row in parsed if row["status"] == "pass"]
    assert passing and all(row["fix_kind"] == "" for row in passing)


def test_awkward_values_survive():
    row = {
        "account_id": "111111111111",
        "message": 'a, "quoted"\nsecond line; =cmd',
        "remediation": {"commands": ["one", "two, three"]},
        "disagreement": True,
    }
    _, parsed = _parse(results_csv([row]))
    assert parsed[0]["message"] == row["message"]
    assert parsed[0]["fix_commands"] == "one\ntwo, three"
    assert parsed[0]["disagreement"] == "true"


def test_results_command_csv_and_json_alias(engine, database_url, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    record_scan(engine, {(A, "kms:CreateGrant"): "fail", (B, "kms:Decrypt"): "pass"})
    assert cli.main(["results", "--database-url", database_url, "--format", "csv"]) == 0
    header, parsed = _parse(capsys.readouterr().out)
    assert header == list(RESULT_COLUMNS) and len(parsed) == 2
    # --json is --format json; global options work before the command name too
    assert cli.main(["--database-url", database_url, "results", "--json"]) == 0
    assert {row["account_id"] for row in json.loads(capsys.readouterr().out)} == {A, B}


def test_report_command_csv(engine, database_url, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    record_scan(engine, {(A, "kms:CreateGrant"): "pass", (B, "kms:Decrypt"): "fail"})
    record_scan(engine, {(A, "kms:CreateGrant"): "fail", (B, "kms:Decrypt"): "pass"})
    assert cli.main(["report", "--database-url", database_url, "--format", "csv"]) == 0
    header, parsed = _parse(capsys.readouterr().out)
    assert header == list(REPORT_COLUMNS)
    sections = {(row["section"], row["account_id"]) for row in parsed}
    assert ("failing", A) in sections and ("regressed", A) in sections
    assert ("fixed", B) in sections
    failing = next(row for row in parsed if row["section"] == "failing")
    assert failing["statement"] == "DenyBackup" and failing["fix_kind"] == "scp-narrow-deny"
    # the long name of md still works
    assert cli.main(["report", "--database-url", database_url, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("# vaultscan weekly report")
