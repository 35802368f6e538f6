"""`vaultscan scan` and `vaultscan results` through the CLI entry point (in-process)."""

from __future__ import annotations

import json

import pytest
import yaml

from scanner import cli
from scanner.sandbox import (
    AWS_BACKUP_KEY_ALIAS,
    BACKUP_ROLE_NAME,
    BACKUP_ROLE_PATH,
    READ_ROLE_NAME,
    VAULT_KEY_ALIAS,
)


def _expected_failures(sandbox) -> int:
    return sum(len(a.failing(r)) for a in sandbox.accounts for r in sandbox.regions)


@pytest.fixture
def sandbox_config(seeded, tmp_path):
    """A vaultscan.yaml for the sandbox, as a user would write it."""
    path = tmp_path / "vaultscan.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "regions": list(seeded.sandbox.regions),
                "member": {"read_role_name": READ_ROLE_NAME},
                "roles": {"names": [f"{BACKUP_ROLE_NAME}*"], "path": BACKUP_ROLE_PATH},
                # the vault key, else AWS Backup's AWS managed key (security-vault-default)
                "keys": {"default": [VAULT_KEY_ALIAS, AWS_BACKUP_KEY_ALIAS]},
                "simulator": "engine",
            }
        )
    )
    return path


def test_scan_command_stores_results_and_fails_on_noncompliance(
    seeded, sandbox_config, database_url, capsys, tmp_path
):
    argv = ["scan", "--config", str(sandbox_config), "--database-url", database_url]
    assert cli.main([*argv, "--fail-on-noncompliant"]) == 1
    out = capsys.readouterr().out
    assert "simulator: vaultscan engine (moto has no SimulatePrincipalPolicy)" in out
    for account in seeded.sandbox.accounts:
        assert account.name in out
    assert "Enable IAM User Permissions" in out  # the key-policy fix, as JSON
    assert "(succeeded)" in out

    results = ["results", "--config", str(sandbox_config), "--database-url", database_url]
    assert cli.main([*results, "--status", "fail", "--json"]) == 0
    failing = json.loads(capsys.readouterr().out)
    assert len(failing) == _expected_failures(seeded.sandbox)
    assert {row["simulator_source"] for row in failing if row["role_arn"]} == {"sandbox-engine"}

    # filters
    legacy = seeded.sandbox.by_name("legacy-billing")
    assert cli.main([*results, "--account", legacy.account_id, "--status", "fail", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["region"], r["check"], r["deciding_layer"]) for r in rows} == {
        (region, "backup:CreateBackupVault", "scp") for region in seeded.sandbox.regions
    }
    assert (
        cli.main(
            [
                *results,
                "--role",
                BACKUP_ROLE_NAME,
                "--region",
                "eu-west-1",
                "--status",
                "pass",
                "--json",
            ]
        )
        == 0
    )
    passing = json.loads(capsys.readouterr().out)
    assert passing and {(r["region"], r["status"]) for r in passing} == {("eu-west-1", "pass")}

    # the human listing names the policy and the fix
    assert cli.main([*results, "--account", legacy.account_id]) == 0
    listing = capsys.readouterr().out
    assert "DenyBackupVaultCreation" in listing and "ArnNotLike" in listing

    # exported scenarios replay with `vaultscan explain`, agreeing with the stored verdicts
    export = tmp_path / "scenarios"
    assert cli.main([*results, "--status", "fail", "--export-scenarios", str(export)]) == 0
    files = sorted(export.glob("*.json"))
    key_state_failures = sum(
        1
        for a in seeded.sandbox.accounts
        for r in seeded.sandbox.regions
        if "kms:KeyState" in a.failing(r)
    )
    assert len(files) == _expected_failures(seeded.sandbox) - key_state_failures
    said = capsys.readouterr().out
    assert f"wrote {len(files)} scenario(s) to {export}/; replay them with" in said
    assert f"({key_state_failures} verdict(s) without a scenario: key-state" in said
    assert cli.main(["explain", str(export)]) == 0


def test_scan_json_output(seeded, sandbox_config, database_url, capsys):
    # one account only (accounts.include), to keep the test fast
    account = seeded.sandbox.by_name("prod-media")
    config = yaml.safe_load(sandbox_config.read_text())
    config["accounts"] = {"include": [account.account_id]}
    sandbox_config.write_text(yaml.safe_dump(config))
    argv = ["scan", "--config", str(sandbox_config), "--database-url", database_url, "--json"]
    assert cli.main(argv) == 0  # findings alone do not fail without --fail-on-noncompliant
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "succeeded" and report["simulator"] == "sandbox-engine"
    assert report["totals"]["accounts_scanned"] == 1
    assert report["totals"]["checks_failed"] == sum(
        len(account.failing(region)) for region in seeded.sandbox.regions
    )
    assert len(report["results"]) == report["totals"]["checks_total"] == 16
    failing = [row for row in report["results"] if row["status"] == "fail"]
    assert {row["remediation"]["kind"] for row in failing} == {"restore-key-policy-default"}


def test_incremental_scan_command_keeps_unchanged_failures_and_full_decides_all(
    seeded, sandbox_config, database_url, capsys
):
    account = seeded.sandbox.by_name("prod-media")  # fails its key checks
    config = yaml.safe_load(sandbox_config.read_text())
    config["accounts"] = {"include": [account.account_id]}
    config["incremental"] = {"enabled": True}
    sandbox_config.write_text(yaml.safe_dump(config))
    argv = ["scan", "--config", str(sandbox_config), "--database-url", database_url]
    assert cli.main([*argv, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["unchanged_accounts"] == 0

    # unchanged: its verdicts carried over still fail the pipeline and are printed
    assert cli.main([*argv, "--fail-on-noncompliant"]) == 1
    out = capsys.readouterr().out
    assert "incremental scan: 1 of 1 accounts unchanged" in out
    assert account.name in out and "(succeeded)" in out

    assert cli.main([*argv, "--full", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["unchanged_accounts"] == 0
    assert sorted((r["check"], r["region"], r["status"]) for r in full["results"]) == sorted(
        (r["check"], r["region"], r["status"]) for r in first["results"]
    )


def test_results_on_an_empty_database_says_what_to_run(sandbox_config, database_url, capsys):
    argv = ["results", "--config", str(sandbox_config), "--database-url", database_url]
    assert cli.main(argv) == 0
    assert "No scan results yet" in capsys.readouterr().out


def test_bad_configuration_exits_2_with_the_field_named(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("regions: [moon-1]\nconcurrancy: 4\n")
    assert cli.main(["scan", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert "regions" in err and "moon-1" in err
    assert "concurrancy: unknown setting" in err
    assert "Traceback" not in err


def test_missing_configuration_file_exits_2(tmp_path, capsys):
    assert cli.main(["results", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cannot read configuration file" in err and "nope.yaml" in err


def test_unusable_database_url_exits_2(sandbox_config, capsys):
    argv = ["scan", "--config", str(sandbox_config), "--database-url", "mysql://x@localhost/db"]
    assert cli.main(argv) == 2
    assert "vaultscan needs PostgreSQL" in capsys.readouterr().err


def test_example_configuration_is_valid():
    from pathlib import Path

    from scanner.config import load_settings

    example = Path(__file__).resolve().parents[2] / "vaultscan.example.yaml"
    settings = load_settings(example)
    assert settings.roles.names == [BACKUP_ROLE_NAME] and settings.roles.path == BACKUP_ROLE_PATH
    assert settings.keys.default == VAULT_KEY_ALIAS


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`vaultscan ... | head`: when the reader goes away, no traceback, exit 141 (SIGPIPE)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSCAN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner", "iam-policy", "--role", "scanner"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == cli.EXIT_BROKEN_PIPE
    assert err == ""


def test_unreachable_database_is_named_with_the_drivers_reason(sandbox_config, capsys):
    url = "postgresql://vaultscan:secret@127.0.0.1:1/vaultscan"  # nothing listens on port 1
    assert cli.main(["scan", "--config", str(sandbox_config), "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "vaultscan scan: cannot use postgresql+psycopg://vaultscan:***@127.0.0.1:1/vaultscan: "
        "connection failed:"
    )
    assert "Connection refused" in err
    assert "OperationalError" not in err and "sqlalche.me" not in err and "secret" not in err


def test_exporting_scenarios_where_no_folder_can_be_made_exits_2(
    sandbox_config, database_url, capsys, tmp_path
):
    (tmp_path / "a-file").write_text("")
    argv = [
        "results",
        "--config",
        str(sandbox_config),
        "--database-url",
        database_url,
        "--export-scenarios",
        str(tmp_path / "a-file" / "scenarios"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "vaultscan results: cannot write scenarios to" in err and "Not a directory" in err


def test_log_lines_carry_their_extra_fields():
    """`log.warning("account not collected", extra={...})` must name the account."""
    import logging

    record = logging.getLogger("scanner.aws.collect").makeRecord(
        "scanner.aws.collect",
        logging.WARNING,
        __file__,
        1,
        "account not collected",
        (),
        None,
        extra={"account": "111122223333", "error": "AccessDenied"},
    )
    line = cli.LogFormatter(cli.LOG_FORMAT).format(record)
    assert line.endswith(
        "WARNING scanner.aws.collect account not collected account=111122223333 error=AccessDenied"
    )


def test_a_key_state_failure_names_its_layer_in_the_tables():
    from rich.console import Console

    from scanner.render import results_table, verdict_table

    row = {
        "account_id": "111122223333",
        "account_name": "security-logs",
        "region": "eu-west-1",
        "role_arn": "",
        "check": "kms:KeyState",
        "status": "fail",
        "deciding_layer": None,
        "message": "Key alias/backup-vault-key is disabled; it cannot encrypt a vault.",
    }
    for table in (results_table([row]), verdict_table([row])):
        console = Console(width=200, record=True)
        console.print(table)
        assert "│ key state " in console.export_text()


def test_no_progress_bar_output_when_not_on_a_terminal(capsys):
    from scanner.render import make_console, scan_progress

    with scan_progress(make_console()) as progress:
        progress(1, 2, None)
    assert capsys.readouterr().out == ""


def test_scan_publish_writes_the_enabled_outlets(seeded, sandbox_config, database_url, capsys):
    account = seeded.sandbox.by_name("prod-media")
    events_file = sandbox_config.parent / "findings.ocsf.jsonl"
    config = yaml.safe_load(sandbox_config.read_text())
    config["accounts"] = {"include": [account.account_id]}
    config["ocsf"] = {"enabled": True, "path": str(events_file)}
    sandbox_config.write_text(yaml.safe_dump(config))
    argv = ["scan", "--config", str(sandbox_config), "--database-url", database_url]
    assert cli.main([*argv, "--publish", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "ocsf: delivered" in err
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    failing = json.loads(out)["totals"]["checks_failed"]
    assert failing > 0 and len(events) == failing
    assert {e["cloud"]["account"]["uid"] for e in events} == {account.account_id}
    assert {e["activity_name"] for e in events} == {"Create"}  # new failures: first scan
