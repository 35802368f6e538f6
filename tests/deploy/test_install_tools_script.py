"""scripts/install-test-tools.sh never stops processes it did not start: the packaged
prometheus service is kept from starting (policy-rc.d), nothing is killed afterwards."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "install-test-tools.sh"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_no_broad_kill_in_the_script() -> None:
    text = SCRIPT.read_text()
    for command in ("pkill", "killall", "service prometheus stop", "systemctl stop"):
        assert command not in text


def test_prometheus_installs_under_a_policy_that_keeps_its_service_from_starting(
    tmp_path: Path,
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls.log"
    policy = tmp_path / "policy-rc.d"
    _fake(fake_bin, "id", "echo 0")  # as root, as on a CI host
    # apt-get records whether the policy was in place and what it answers
    _fake(
        fake_bin,
        "apt-get",
        f'echo "apt-get $*" >> {calls}\n'
        f'if [ "$1" = install ] || [ "$3" = install ] || echo "$*" | grep -q install; then\n'
        f"  if [ -x {policy} ]; then {policy} prometheus start; "
        f'echo "policy answered $?" >> {calls}; fi\nfi',
    )
    for name in ("pkill", "killall", "service", "systemctl", "kill"):
        _fake(fake_bin, name, f'echo "{name} $*" >> {calls}')
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "POLICY_RC_D": str(policy)}
    done = subprocess.run(
        ["bash", "-c", f"source {SCRIPT} && install_prometheus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    log = calls.read_text().splitlines()
    assert any(line.startswith("apt-get") and "install" in line for line in log)
    assert "policy answered 101" in log  # invoke-rc.d: action not allowed
    assert not [line for line in log if line.split()[0] in {"pkill", "killall", "kill"}]
    assert not [line for line in log if line.split()[0] in {"service", "systemctl"}]
    assert not policy.exists()  # removed again: it was not there before


def test_an_existing_policy_is_left_alone(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    _fake(fake_bin, "id", "echo 0")
    _fake(fake_bin, "apt-get", "exit 0")
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "POLICY_RC_D": str(policy)}
    subprocess.run(
        ["bash", "-c", f"source {SCRIPT} && install_prometheus"], env=env, check=True, timeout=60
    )
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"
