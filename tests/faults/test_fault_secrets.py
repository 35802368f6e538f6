"""Known secrets planted everywhere a secret can enter (the scanner's AWS keys and session
token, the credentials AssumeRole hands out, a database password in the URL's userinfo
and in `?password=`), every command run at maximum verbosity, including the failures
(connection refused, bad configuration): no byte of any output, log or stored row may
carry one."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml
from fault_harness import REPO_ROOT, write_config
from processes import aws_environment
from sqlalchemy import create_engine, inspect, text

ACCESS_KEY_ID = "AKIAPLANTEDKEY7Q2XW9"
SECRET_ACCESS_KEY = "Pl4ntedSecretAccessKey/abc+DEF0123456789xyzQ"
SESSION_TOKEN = "FwoGZXIvYXdzEPlantedSessionToken0123456789//////////wEaDH"
USERINFO_PASSWORD = "Pl4nted-Us3rinfo-Pw"
QUERY_PASSWORD = "Pl4nted-Qu3ry-Pw"


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def _with_password(url: str, *, userinfo: bool) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    if userinfo:
        return f"{scheme}://{user}:{USERINFO_PASSWORD}@{host}"
    return f"{scheme}://{user}@{host}?password={QUERY_PASSWORD}"


def _issued_secrets(endpoint: str) -> set[str]:
    """Every SecretAccessKey and SessionToken moto handed out (AssumeRole)."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=30) as response:
        data = json.loads(response.read())
    found: set[str] = set()
    stack: list[object] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key in {"secret_access_key", "session_token"} and isinstance(item, str):
                    found.add(item)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _stored_text(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            assert "scan_runs" in tables and "check_results" in tables
            return "\n".join(
                json.dumps(row[0])
                for table in tables
                for row in conn.execute(text(f'SELECT row_to_json(t) FROM "{table}" t'))
            )
    finally:
        engine.dispose()


def test_no_secret_in_any_output_log_or_stored_row(seeded_moto, scratch_url, tmp_path):
    env = aws_environment(seeded_moto.moto.endpoint)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN=SESSION_TOKEN,
    )
    userinfo_url = _with_password(scratch_url, userinfo=True)
    query_url = _with_password(scratch_url, userinfo=False)
    config = write_config(tmp_path / "vaultscan.yaml", seeded_moto.settings(), userinfo_url)
    refused = _with_password(
        scratch_url.replace(scratch_url.split("@", 1)[1].split("/", 1)[0], "127.0.0.1:1"),
        userinfo=True,
    )
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text(
        yaml.safe_dump({"database": {"url": query_url, "data_dir": [userinfo_url]}})
    )
    wrong_scheme = tmp_path / "mysql.yaml"
    wrong_scheme.write_text(
        yaml.safe_dump({"database": {"url": query_url.replace("postgresql+psycopg", "mysql")}})
    )
    runs = [
        ("-vv", "scan", "--config", str(config)),
        ("-vv", "scan", "--config", str(config), "--database-url", query_url),
        ("-vv", "serve", "--once", "--config", str(config)),
        ("-vv", "db", "url", "--config", str(config)),
        ("-vv", "db", "url", "--database-url", query_url),
        ("-vv", "db", "current", "--database-url", query_url),
        ("-vv", "results", "--config", str(config)),
        ("-vv", "results", "--json", "--database-url", query_url),
        ("-vv", "report", "--config", str(config)),
        ("-vv", "scan", "--config", str(config), "--database-url", refused),
        ("-vv", "db", "current", "--database-url", refused + f"?password={QUERY_PASSWORD}"),
        ("-vv", "scan", "--config", str(bad_config)),
        ("-vv", "db", "url", "--config", str(wrong_scheme)),
    ]
    outputs = []
    for args in runs:
        code, output = _run(env, *args)
        outputs.append((args, code, output))
    # the commands really ran: scans stored, failures failed
    assert [code for _, code, _ in outputs[:3]] == [0, 0, 0], outputs[:3]
    assert all(code == 2 for _, code, _ in outputs[-4:]), outputs[-4:]
    assert "botocore" in outputs[0][2] or "DEBUG" in outputs[0][2]  # -vv did log

    issued = _issued_secrets(seeded_moto.moto.endpoint)
    assert issued, "moto handed out no credentials: the scan did not assume any role"
    secrets = {SECRET_ACCESS_KEY, SESSION_TOKEN, ACCESS_KEY_ID, USERINFO_PASSWORD, QUERY_PASSWORD}
    secrets |= issued
    stored = _stored_text(scratch_url)
    assert len(stored) > 1000
    logs = "\n".join(output for _, _, output in outputs)
    Path(tmp_path / "all-output.txt").write_text(logs)
    for secret in sorted(secrets):
        assert secret not in logs, f"a secret ({secret[:6]}…) was printed"
        assert secret not in stored, f"a secret ({secret[:6]}…) was stored"
        # nor a long piece of it (a truncated secret is still a leak)
        for piece in (secret[:16], secret[-16:]):
            if len(secret) >= 24:
                assert piece not in logs, f"part of a secret ({secret[:6]}…) was printed"
