"""`vaultscan db` through the real command-line entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.cli import main
from storage.migrate import current


def test_upgrade_then_current(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--database-url", database_url]) == 1
    assert "vaultscan db upgrade" in capsys.readouterr().out

    assert main(["db", "upgrade", "--database-url", database_url]) == 0
    assert "upgraded from empty to revision 0007" in capsys.readouterr().out
    assert current(database_url) == "0007"

    assert main(["db", "upgrade", "--database-url", database_url]) == 0  # idempotent
    assert "already at revision 0007" in capsys.readouterr().out
    assert main(["db", "current", "--database-url", database_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0007 (newest)"


def test_url_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "url", "--database-url", "postgresql://vault:s3cret@db:5432/vs"]) == 0
    assert capsys.readouterr().out.strip() == "postgresql+psycopg://vault:***@db:5432/vs"


def test_url_from_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "vaultscan.yaml"
    config.write_text("database:\n  url: postgresql://cfg:pw@dbhost/vaultscan\n")
    assert main(["db", "url", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "postgresql+psycopg://cfg:***@dbhost/vaultscan"


def test_bad_url_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--database-url", "mysql://u@h/db"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


def test_unreachable_server_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://vault:s3cret@127.0.0.1:1/vaultscan"
    assert main(["db", "upgrade", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert "cannot reach postgresql+psycopg://vault:***@127.0.0.1:1/vaultscan" in err
    assert "s3cret" not in err


def test_prune_reports_what_it_removed(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "prune", "--keep-days", "30", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert "removed the evidence of 0 run(s)" in out and "0 check results" in out
    assert current(database_url) == "0007"  # prune migrates first


def test_prune_needs_a_positive_number_of_days(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["db", "prune", "--keep-days", "0"])
    assert exited.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
