"""Settings: YAML + VAULTSCAN_* environment, validation messages, fingerprint."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from scanner.config import ConfigError, Settings, load_settings
from scanner.profiles import parse_profile


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [key for key in os.environ if key.startswith("VAULTSCAN_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./vaultscan.yaml unless a test writes one


def write(tmp_path: Path, text: str, name: str = "vaultscan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_any_file() -> None:
    settings = load_settings()
    assert settings.regions == ["us-east-1"]
    assert settings.member.read_role_name == "VaultscanReadRole"
    assert settings.roles.names == ["*Backup*"]
    assert settings.keys.for_region("eu-west-1") == "alias/aws/backup"
    assert settings.profiles == ["backup-vault-create"]
    assert settings.simulator == "aws" and settings.concurrency == "auto"
    assert settings.schedule.interval_minutes == 360 and settings.metrics.port == 9108
    assert settings.database.url is None and settings.database.data_dir == Path(".vaultscan")


def test_reads_the_file_and_nested_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
organization: {role_arn: "arn:aws:iam::111122223333:role/OrgReader", external_id: abc}
member: {read_role_name: Reader, read_role_path: /audit/}
regions: [eu-west-1, eu-central-1]
accounts: {exclude: ["222233334444"]}
ous: {include: [ou-ab12-cdefgh34]}
roles: {names: [BackupOperator], tag: {key: team, value: backup}}
keys:
  default: alias/aws/backup
  per_region:
    eu-west-1: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
simulator: engine
schedule: {cron: "0 */6 * * *"}
""",
    )
    settings = load_settings(path)
    assert settings.organization.role_arn == "arn:aws:iam::111122223333:role/OrgReader"
    assert settings.member.read_role_path == "/audit/"
    assert settings.regions == ["eu-west-1", "eu-central-1"]
    assert settings.ous.include == ["ou-ab12-cdefgh34"]
    assert settings.roles.tag is not None and settings.roles.tag.value == "backup"
    assert settings.keys.for_region("eu-west-1").endswith(
        "key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    assert settings.keys.for_region("eu-central-1") == "alias/aws/backup"
    assert settings.simulator == "engine" and settings.schedule.cron == "0 */6 * * *"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "regions: [eu-west-1]\ndatabase: {data_dir: /var/lib/vs}\n")
    monkeypatch.setenv("VAULTSCAN_DATABASE__URL", "postgresql+psycopg://db/vaultscan")
    monkeypatch.setenv("VAULTSCAN_REGIONS", "us-east-1, us-west-2")
    monkeypatch.setenv("VAULTSCAN_CONCURRENCY", "16")
    settings = load_settings(path)
    assert settings.database.url == "postgresql+psycopg://db/vaultscan"
    assert settings.database.data_dir == Path("/var/lib/vs")  # merged, not replaced
    assert settings.regions == ["us-east-1", "us-west-2"]
    assert settings.concurrency == 16


def test_regions_as_json_list_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSCAN_REGIONS", '["ap-southeast-2", "eu-west-1"]')
    assert load_settings().regions == ["ap-southeast-2", "eu-west-1"]


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSCAN_SIMULATOR", "engine")
    assert load_settings().simulator == "engine"
    assert load_settings(overrides={"simulator": "aws"}).simulator == "aws"


def test_config_file_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "concurrency: 3\n", name="elsewhere.yaml")
    monkeypatch.setenv("VAULTSCAN_CONFIG", str(path))
    assert load_settings().concurrency == 3


def test_vaultscan_yaml_in_working_directory_is_used(tmp_path: Path) -> None:
    write(tmp_path, "concurrency: 5\n")
    assert load_settings().concurrency == 5


def test_every_bad_field_is_named_with_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
regions: [eu-west-1, moon-base-1a]
concurrency: 1000
rolez: {names: [x]}
accounts: {include: ["12345"]}
member: {read_role_nam: X}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = caught.value.message
    assert str(path) in message
    assert "regions.1: expected an AWS region name like 'eu-west-1', got 'moon-base-1a'" in message
    assert "concurrency: expected 'auto' or a number of accounts from 1 to 512, got 1000" in message
    assert "rolez: unknown setting" in message
    assert "member.read_role_nam: unknown setting" in message
    assert "accounts.include.0:" in message and "'12345'" in message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"regions": []}, "regions"),
        ({"simulator": "local"}, "simulator"),
        ({"keys": {"default": "my key"}}, "keys.default"),
        ({"keys": {"per_region": {"mars-1": "alias/x"}}}, "keys.per_region"),
        ({"keys": {"default": []}}, "keys.default"),
        ({"keys": {"default": ["alias/a", "bad key"]}}, "keys.default"),
        ({"keys": {"default": ["alias/a", "alias/a"]}}, "keys.default"),
        ({"keys": {"per_region": {"eu-west-1": ["alias/a", "x y"]}}}, "keys.per_region"),
        ({"ous": {"exclude": ["prod"]}}, "ous.exclude.0"),
        ({"organization": {"role_arn": "OrgReader"}}, "organization.role_arn"),
        ({"schedule": {"cron": "every six hours"}}, "schedule.cron"),
        ({"metrics": {"port": 70000}}, "metrics.port"),
        ({"member": {"read_role_path": "audit"}}, "member.read_role_path"),
    ],
)
def test_bad_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides=overrides)
    assert f"  - {field}" in caught.value.message


def test_bad_environment_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSCAN_CONCURRENCY", "lots")
    with pytest.raises(ConfigError, match="concurrency"):
        load_settings()


def test_a_nested_setting_with_one_underscore_is_an_error_naming_the_spelling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULTSCAN_DATABASE_URL", "postgresql://db.example.internal/vaultscan")
    monkeypatch.setenv("VAULTSCAN_SERVICE_PORT", "9108")  # a Kubernetes service link: allowed
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.message.splitlines() == [
        "invalid configuration (VAULTSCAN_* environment):",
        "  - VAULTSCAN_DATABASE_URL: unknown environment setting (a nested setting takes a "
        "double underscore: VAULTSCAN_DATABASE__URL)",
    ]


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("VAULTSCAN_DATABSE__URL", "did you mean VAULTSCAN_DATABASE__URL?"),
        ("VAULTSCAN_CONCURENCY", "did you mean VAULTSCAN_CONCURRENCY?"),
        ("VAULTSCAN_ROLES__TAGS", "did you mean VAULTSCAN_ROLES__TAG?"),
        (
            "VAULTSCAN_METRICS_PORT",
            "a nested setting takes a double underscore: VAULTSCAN_METRICS__PORT",
        ),
        ("VAULTSCAN_NOTHING_LIKE_IT", "see docs/configuration.md"),
    ],
)
def test_a_misspelt_environment_setting_is_an_error(
    monkeypatch: pytest.MonkeyPatch, name: str, hint: str
) -> None:
    monkeypatch.setenv(name, "9108")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"  - {name}: unknown environment setting ({hint})" in caught.value.message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VAULTSCAN_CONFIG", "/nonexistent-but-unread"),
        ("VAULTSCAN_ALEMBIC_DIR", "/app/alembic"),
        ("VAULTSCAN_TEST_PG_URL", "postgresql://postgres@127.0.0.1/test"),
        ("VAULTSCAN_PORT", "tcp://10.0.0.7:9108"),
        ("VAULTSCAN_SERVICE_HOST", "10.0.0.7"),
        ("VAULTSCAN_METRICS_PORT", "tcp://10.0.0.7:9108"),  # Service vaultscan-metrics
        ("VAULTSCAN_METRICS_PORT_9108_TCP_ADDR", "10.0.0.7"),
        ("VAULTSCAN_ROLES__TAG__KEY", "team"),
        ("VAULTSCAN_KEYS__PER_REGION__EU_WEST_1", "alias/backup"),
        ("VAULTSCAN_ACCOUNT_TIME_LIMIT_SECONDS", "60"),
    ],
)
def test_settings_documented_extras_and_service_links_are_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from scanner.config import check_environment

    check_environment({name: value})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "regions: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_settings(write(tmp_path, "- just\n- a list\n"))


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("roles:\n  names: [Sauvegard\xe9]\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not a UTF-8 text file \(byte 0xe9"):
        load_settings(path)


def test_fingerprint_follows_meaning_not_spelling(tmp_path: Path) -> None:
    a = load_settings(write(tmp_path, "regions: [eu-west-1]\nconcurrency: 4\n", "a.yaml"))
    b = load_settings(write(tmp_path, "concurrency: 4\nregions:\n  - eu-west-1\n", "b.yaml"))
    c = load_settings(write(tmp_path, "regions: [eu-west-2]\nconcurrency: 4\n", "c.yaml"))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 64


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.concurrency = 3  # type: ignore[misc]


def yaml_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown.read_text(), flags=re.DOTALL)


def test_documented_examples_are_valid(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    complete, profile = yaml_blocks(docs)
    settings = load_settings(write(tmp_path, complete))
    assert settings == Settings.model_validate(yaml.safe_load(complete))
    assert settings.keys.for_region("eu-west-1").startswith("arn:aws:kms:eu-west-1:")
    parsed = parse_profile(yaml.safe_load(profile), "docs")
    assert [r.action for r in parsed.requirements] == ["backup:StartRestoreJob", "kms:Decrypt"]


def test_profile_files_in_the_file_are_relative_to_it(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write(folder, "profile_files: [profiles/restore.yaml, /abs/other.yaml]\n")
    settings = load_settings(path)
    assert settings.profile_files == [folder / "profiles" / "restore.yaml", Path("/abs/other.yaml")]


def test_keys_accept_an_ordered_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        """
keys:
  default: [alias/vault-key, alias/aws/backup]
  per_region:
    eu-west-1: alias/eu-vault-key
    us-west-2: [alias/west-key, alias/vault-key]
""",
    )
    settings = load_settings(path)
    assert settings.keys.candidates("us-east-1") == ["alias/vault-key", "alias/aws/backup"]
    assert settings.keys.candidates("eu-west-1") == ["alias/eu-vault-key"]
    assert settings.keys.candidates("us-west-2") == ["alias/west-key", "alias/vault-key"]
    assert settings.keys.for_region("us-east-1") == "alias/vault-key"
    monkeypatch.setenv("VAULTSCAN_KEYS__DEFAULT", "alias/vault-key,alias/aws/backup")
    assert load_settings(overrides={}).keys.candidates("x-1") == [
        "alias/vault-key",
        "alias/aws/backup",
    ]
    monkeypatch.setenv("VAULTSCAN_KEYS__DEFAULT", "alias/only-key")
    assert load_settings(overrides={}).keys.candidates("x-1") == ["alias/only-key"]


BILLION_LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)]
    + ["regions: *i"]
)


def test_a_yaml_alias_bomb_is_refused_in_a_short_message(tmp_path: Path) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as caught:
            load_settings(write(tmp_path, BILLION_LAUGHS))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "expands to more than 200000 values (YAML aliases)" in caught.value.message
    assert len(caught.value.message) < 500
    assert peak < 50 * 1024 * 1024


def test_deeply_nested_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_settings(write(tmp_path, "regions: " + "[" * 5000 + "]" * 5000 + "\n"))


def test_a_config_error_masks_and_bounds_the_value_it_echoes(tmp_path: Path) -> None:
    secret = "Pl4nted-Passw0rd"
    long_url = f"mysql://vaultscan:{secret}@db.example.internal/vaultscan?password={secret}"
    text = f"concurrency: ['{long_url}', {'x' * 5000!r}]\nregions: ['{long_url}']\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    message = caught.value.message
    assert "concurrency" in message and "regions.0" in message  # the fields are named
    assert secret not in message
    assert "vaultscan:***@" in message
    assert all(len(line) <= 400 for line in message.splitlines())


def test_a_yaml_syntax_error_does_not_quote_the_line(tmp_path: Path) -> None:
    secret = "Pl4nted-Passw0rd"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, f"database:\n  url: [postgresql://u:{secret}@db/x\n"))
    assert "not valid YAML" in caught.value.message
    assert secret not in caught.value.message


def test_a_tag_selector_alone_designates_only_tagged_roles() -> None:
    tagged = load_settings(overrides={"roles": {"tag": {"key": "vaultscan", "value": "backup"}}})
    assert tagged.roles.names == [] and tagged.roles.tag.key == "vaultscan"
    by_path = load_settings(overrides={"roles": {"path": "/backup/"}})
    assert by_path.roles.names == []
    both = load_settings(overrides={"roles": {"names": ["Ops*"], "tag": {"key": "vaultscan"}}})
    assert both.roles.names == ["Ops*"]
    assert load_settings(overrides={}).roles.names == ["*Backup*"]
