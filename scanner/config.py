"""Settings: `vaultscan.yaml` plus `VAULTSCAN_*` environment overrides.

Precedence, highest first: `overrides` passed by the caller, environment variables
(`VAULTSCAN_DATABASE__URL`, `VAULTSCAN_REGIONS=eu-west-1,us-east-1`, ...), the YAML file,
then the defaults below. Unknown keys are rejected so a typo never silently falls back to
a default. Every field is documented in docs/configuration.md.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from scanner.bounded_input import InputError, load_yaml
from scanner.redact import bounded, mask_secrets, shown_value

log = logging.getLogger(__name__)
# The longest line an error about one field prints (values are bounded within it).
DETAIL_LIMIT = 300

CONFIG_ENV_VAR = "VAULTSCAN_CONFIG"
DEFAULT_CONFIG_FILE = Path("vaultscan.yaml")

REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ACCOUNT_ID_RE = r"^\d{12}$"
# r-xxxx is a root; ou-<root part>-<8..32 chars> an organizational unit
TARGET_ID_RE = r"^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[0-9a-z]{8,32})$"
KEY_REF_RE = re.compile(
    r"^(alias/[a-zA-Z0-9/_-]+"
    r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[a-zA-Z0-9/_-]+"
    r"|(mrk-)?[0-9a-f-]{32,36})$"
)
IAM_PATH_RE = r"^/([\x21-\x7e]*/)?$"
IAM_NAME_RE = r"^[\w+=,.@-]{1,64}$"
SESSION_NAME_RE = r"^[\w+=,.@-]{2,40}$"
ROLE_ARN_RE = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"
PATTERN_HELP = {
    ACCOUNT_ID_RE: "expected a 12-digit AWS account id",
    TARGET_ID_RE: "expected a root id (r-xxxx) or an OU id (ou-xxxx-xxxxxxxx)",
    IAM_PATH_RE: "expected an IAM path that starts and ends with '/', e.g. /security/",
    IAM_NAME_RE: "expected an IAM role name (letters, digits and +=,.@_-; at most 64)",
    SESSION_NAME_RE: "expected 2-40 characters from letters, digits and +=,.@_-",
    ROLE_ARN_RE: "expected a role ARN like arn:aws:iam::111122223333:role/OrgReader",
}


def _check_region(value: str) -> str:
    if not REGION_RE.match(value):
        raise ValueError(f"expected an AWS region name like 'eu-west-1', got {value!r}")
    return value


Region = Annotated[str, AfterValidator(_check_region)]


MAX_CONCURRENCY = 512


class ConfigError(Exception):
    """The configuration cannot be used; the message names the source and each bad field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrganizationSettings(_Section):
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN_RE)
    external_id: str | None = None
    profile: str | None = None
    region: str = "us-east-1"
    partition: Literal["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"] = "aws"

    @field_validator("region")
    @classmethod
    def _region_format(cls, value: str) -> str:
        return _check_region(value)


class MemberSettings(_Section):
    read_role_name: str = Field(default="VaultscanReadRole", pattern=IAM_NAME_RE)
    read_role_path: str = Field(default="/", pattern=IAM_PATH_RE)
    external_id: str | None = None
    session_name: str = Field(default="vaultscan", pattern=SESSION_NAME_RE)
    scan_management_account: bool = False


class AccountFilter(_Section):
    include: list[Annotated[str, Field(pattern=ACCOUNT_ID_RE)]] = Field(default_factory=list)
    exclude: list[Annotated[str, Field(pattern=ACCOUNT_ID_RE)]] = Field(default_factory=list)


class OuFilter(_Section):
    include: list[Annotated[str, Field(pattern=TARGET_ID_RE)]] = Field(default_factory=list)
    exclude: list[Annotated[str, Field(pattern=TARGET_ID_RE)]] = Field(default_factory=list)


class RoleTag(_Section):
    key: str = Field(min_length=1)
    value: str | None = None  # None: any value


DEFAULT_ROLE_NAMES = ("*Backup*",)


class RoleSelector(_Section):
    """Which roles are designated: a role matches if it matches ANY configured criterion.
    The default names apply only when no criterion is configured: a selector that names
    a tag or a path designates exactly the roles carrying it."""

    names: list[str] = Field(default_factory=lambda: list(DEFAULT_ROLE_NAMES))
    tag: RoleTag | None = None
    path: str | None = Field(default=None, pattern=IAM_PATH_RE)

    @model_validator(mode="before")
    @classmethod
    def _names_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "names" not in data and (data.get("tag") or data.get("path")):
            return {**data, "names": []}
        return data


KeyRefs = str | list[str]


class KeySettings(_Section):
    """The key checked in each region: one reference, or an ordered list where the first
    key that exists in the region wins (`[alias/vault-key, alias/aws/backup]`)."""

    default: Annotated[KeyRefs, NoDecode] = "alias/aws/backup"
    per_region: dict[str, KeyRefs] = Field(default_factory=dict)
    include_vault_keys: bool = True

    @field_validator("default", mode="before")
    @classmethod
    def _split_default(cls, value: Any) -> Any:
        # from the environment: a JSON list, or references separated by commas
        if isinstance(value, str) and (value.strip().startswith("[") or "," in value):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("default")
    @classmethod
    def _default_format(cls, value: KeyRefs) -> KeyRefs:
        return _check_key_refs(value)

    @field_validator("per_region")
    @classmethod
    def _per_region_format(cls, value: dict[str, KeyRefs]) -> dict[str, KeyRefs]:
        for region, keys in value.items():
            _check_region(region)
            _check_key_refs(keys)
        return value

    def candidates(self, region: str) -> list[str]:
        """The keys to try in `region`, in order; the first that exists is checked."""
        keys = self.per_region.get(region, self.default)
        return [keys] if isinstance(keys, str) else list(keys)

    def for_region(self, region: str) -> str:
        """The first candidate key of `region`."""
        return self.candidates(region)[0]


class DatabaseSettings(_Section):
    url: str | None = None  # None: embedded PostgreSQL under data_dir
    data_dir: Path = Path(".vaultscan")


class ScheduleSettings(_Section):
    cron: str | None = None
    interval_minutes: int = Field(default=360, ge=1)
    run_at_startup: bool = True
    misfire_grace_seconds: int = Field(default=600, ge=0)
    stop_grace_seconds: int = Field(default=30, ge=0)

    @field_validator("cron")
    @classmethod
    def _cron_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger  # only when a cron is configured

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"expected a 5-field crontab like '0 */6 * * *' ({exc})") from exc
        return value


class MetricsSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(default=9108, ge=1, le=65535)


class EmailDelivery(_Section):
    to: list[str] = Field(default_factory=list)  # empty: no e-mail
    sender: str = "vaultscan@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    # from VAULTSCAN_REPORT__DELIVERY__EMAIL__PASSWORD (a Secret), never the file
    password: str | None = None
    subject: str = "vaultscan report {period_end}"


class ReportDelivery(_Section):
    directory: Path | None = None  # write the files here
    s3_uri: str | None = Field(
        default=None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
    )
    email: EmailDelivery = Field(default_factory=EmailDelivery)


class ReportSettings(_Section):
    # 5-field crontab (UTC): `serve` writes and delivers the report on it (null: never)
    schedule: str | None = None
    days: int = Field(default=7, ge=1, le=3660)
    formats: list[Literal["html", "md", "json", "csv"]] = Field(
        default_factory=lambda: ["html"], min_length=1
    )
    delivery: ReportDelivery = Field(default_factory=ReportDelivery)
    # an account tag naming its owner (team): the report groups accounts by its value and
    # discovery reads it (organizations:ListTagsForResource, one call per account)
    owner_tag: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("schedule")
    @classmethod
    def _schedule_format(cls, value: str | None) -> str | None:
        return ScheduleSettings._cron_format(value)  # type: ignore[call-arg]


class LoggingSettings(_Section):
    # text: "time LEVEL logger message key=value"; json: one JSON object per line
    format: Literal["text", "json"] = "text"
    # `serve` logs a running scan's progress this often (0: never)
    progress_seconds: float = Field(default=10.0, ge=0)


class RetentionSettings(_Section):
    # evidence of runs older than this is removed by `serve` (0: keep everything)
    keep_days: int = Field(default=90, ge=0)
    interval_minutes: int = Field(default=1440, ge=1)  # how often `serve` prunes
    batch_size: int = Field(default=5000, ge=1, le=100_000)  # rows per transaction


class IncrementalSettings(_Section):
    """Skip the simulator, the decisions and the writes of accounts whose evidence is
    unchanged since their last read (docs/configuration.md, "Incremental scans")."""

    enabled: bool = False
    # an account's verdicts are decided afresh at least this often, changed or not
    max_age_hours: float = Field(default=24.0, gt=0, le=24 * 366)


class EventsSettings(_Section):
    """Event-driven rescans from an SQS queue of CloudTrail events (docs/events.md)."""

    queue_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # long-poll wait per ReceiveMessage (SQS allows 0-20 s)
    wait_seconds: int = Field(default=20, ge=0, le=20)
    # after the first message, keep collecting this long so a burst becomes one plan
    batch_seconds: float = Field(default=2.0, ge=0, le=60)
    max_batch_messages: int = Field(default=100, ge=1, le=10_000)


# --- outlets: where findings go besides the database (docs/integrations.md) -------------

SNS_TOPIC_ARN_RE = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
S3_URI_RE = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
PATTERN_HELP[SNS_TOPIC_ARN_RE] = (
    "expected an SNS topic ARN like arn:aws:sns:eu-west-1:111122223333:t"
)
PATTERN_HELP[S3_URI_RE] = "expected an S3 location like s3://bucket/prefix/"


class SecurityHubSettings(_Section):
    """Import failing checks into AWS Security Hub after each scan of `serve`."""

    enabled: bool = False
    region: Region | None = None  # None: organization.region


class OcsfSettings(_Section):
    """Write OCSF Compliance Finding events (JSON lines) after each scan of `serve`."""

    enabled: bool = False
    path: Path | None = None  # a local file; appended to
    s3_uri: str | None = Field(default=None, pattern=S3_URI_RE)  # one object per scan
    region: Region | None = None  # the bucket's region; None: organization.region

    @model_validator(mode="after")
    def _has_destination(self) -> OcsfSettings:
        if self.enabled and self.path is None and self.s3_uri is None:
            raise ValueError("ocsf.enabled needs ocsf.path (a file) or ocsf.s3_uri (s3://...)")
        return self


class WebhookSettings(_Section):
    url: SecretStr | None = None
    # HMAC-SHA256 of the body under this secret goes in the X-Vaultscan-Signature header
    secret: SecretStr | None = None


class SlackSettings(_Section):
    webhook_url: SecretStr | None = None  # an incoming webhook URL (it is the credential)


class SnsSettings(_Section):
    topic_arn: str | None = Field(default=None, pattern=SNS_TOPIC_ARN_RE)


class NotificationSettings(_Section):
    """One message per scan that changed something, to each configured outlet."""

    slack: SlackSettings = Field(default_factory=SlackSettings)
    sns: SnsSettings = Field(default_factory=SnsSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    max_items: int = Field(default=10, ge=1, le=100)  # per list; the rest is counted
    attempts: int = Field(default=4, ge=1, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)  # doubles per attempt
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    link_url: str | None = None  # e.g. a Grafana dashboard; shown under each message


_yaml_values: ContextVar[dict[str, Any] | None] = ContextVar("vaultscan_yaml", default=None)


class _YamlValues(PydanticBaseSettingsSource):
    """The parsed YAML file, handed in by load_settings (parsed there for good errors)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_yaml_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_values.get() or {})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VAULTSCAN_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    organization: OrganizationSettings = Field(default_factory=OrganizationSettings)
    member: MemberSettings = Field(default_factory=MemberSettings)
    regions: Annotated[list[Region], NoDecode] = Field(default_factory=lambda: ["us-east-1"])
    accounts: AccountFilter = Field(default_factory=AccountFilter)
    ous: OuFilter = Field(default_factory=OuFilter)
    roles: RoleSelector = Field(default_factory=RoleSelector)
    keys: KeySettings = Field(default_factory=KeySettings)
    profiles: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["backup-vault-create"]
    )
    profile_files: list[Path] = Field(default_factory=list)
    simulator: Literal["aws", "engine"] = "aws"
    # how a member account's roles are read: iam:GetAccountAuthorizationDetails (one call
    # for every role and customer-managed policy) or the per-role calls (docs/read-role.md)
    iam_read: Literal["authorization-details", "per-role"] = "authorization-details"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    # accounts scanned at once: a number, or "auto" (sized to AWS's quotas, scanner/aws/sizing.py)
    concurrency: int | Literal["auto"] = "auto"
    # serve replicas share each scan's accounts through PostgreSQL (docs/deploy.md)
    share_scans: bool = False
    # one account never holds a scan longer than this (see docs/configuration.md)
    account_time_limit_seconds: int = Field(default=900, ge=1, le=86400)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    incremental: IncrementalSettings = Field(default_factory=IncrementalSettings)
    securityhub: SecurityHubSettings = Field(default_factory=SecurityHubSettings)
    ocsf: OcsfSettings = Field(default_factory=OcsfSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)

    @field_validator("regions", "profiles", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        # environment variables may give a JSON list or a comma-separated string
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency_value(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if (
            isinstance(value, bool)
            or not 1 <= number <= MAX_CONCURRENCY
            or number != value
            and (not isinstance(value, str) or value.strip() != str(number))
        ):
            raise ValueError(
                f"expected 'auto' or a number of accounts from 1 to {MAX_CONCURRENCY}, "
                f"got {value!r}"
            )
        return number

    @field_validator("regions")
    @classmethod
    def _regions_format(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one region, e.g. [us-east-1]")
        return list(dict.fromkeys(value))  # keep order, drop duplicates

    @field_validator("profiles")
    @classmethod
    def _profiles_present(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one requirement profile name")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlValues(settings_cls))

    def fingerprint(self) -> str:
        """sha256 of the normalized settings: equal configurations give equal fingerprints."""
        normalized = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(normalized.encode()).hexdigest()


def _check_key_refs(value: KeyRefs) -> KeyRefs:
    if isinstance(value, list):
        if not value:
            raise ValueError("expected a key reference or a non-empty list of them")
        for item in value:
            _check_key_ref(item)
        if len(set(value)) != len(value):
            raise ValueError(f"the same key is listed twice in {value!r}")
        return value
    return _check_key_ref(value)


def _check_key_ref(value: str) -> str:
    if not KEY_REF_RE.match(value):
        raise ValueError(
            f"expected a KMS key alias ('alias/aws/backup'), key ARN, alias ARN or key id, "
            f"got {value!r}"
        )
    return value


def config_path(path: Path | None) -> Path | None:
    """The file to read: the argument, else $VAULTSCAN_CONFIG, else ./vaultscan.yaml if any."""
    if path is not None:
        return path
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save the configuration as UTF-8 YAML"
        ) from None
    try:
        data = load_yaml(text)  # aliases, depth and size bounded
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except InputError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's message without the quoted source line (which may hold a secret)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return bounded(mask_secrets(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))


def _describe(errors: list[dict[str, Any]], source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for error in errors:
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(
                f"  - {location}: unknown setting (check the spelling; see docs/configuration.md)"
            )
            continue
        if error["type"] == "string_pattern_mismatch":
            pattern = error.get("ctx", {}).get("pattern", "")
            detail = PATTERN_HELP.get(pattern, error["msg"])
        else:
            detail = error["msg"].removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], dict) and "got " not in detail:
            detail += f" (got {shown_value(error['input'])})"
        # validators may echo the value themselves: masked and bounded all the same
        lines.append(f"  - {location}: {bounded(mask_secrets(detail), DETAIL_LIMIT)}")
    return "\n".join(lines)


# VAULTSCAN_* names that are not settings but are documented (docs/configuration.md).
ENV_EXTRAS = frozenset(
    {
        CONFIG_ENV_VAR,
        "VAULTSCAN_ALEMBIC_DIR",  # where the image keeps the migrations
        "VAULTSCAN_TEST_PG_URL",  # the test suite's PostgreSQL server
    }
)
# Kubernetes service links for a Service named vaultscan or vaultscan-*: VAULTSCAN_PORT,
# VAULTSCAN_SERVICE_HOST, VAULTSCAN_METRICS_PORT_9108_TCP_ADDR, ... ("Discovering services",
# https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables).
_SERVICE_LINK = re.compile(
    r"^VAULTSCAN(_[A-Z0-9_]+?)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?"
    r"|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$"
)
_LINK_VALUE = re.compile(r"^(tcp|udp|sctp)://")
ENV_PREFIX = "VAULTSCAN_"


def _setting_names(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, bool]]:
    """(environment name, open) for every field of `model`; open names take any suffix."""
    for name, field in model.model_fields.items():
        env_name = f"{prefix}{name.upper()}"
        # `RoleTag | None` and the like: the model inside the optional
        annotation = field.annotation
        is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        options = typing.get_args(annotation) if is_union else (annotation,)
        models = [t for t in options if isinstance(t, type) and issubclass(t, BaseModel)]
        if models:
            yield env_name, False
            yield from _setting_names(models[0], f"{env_name}__")
        else:
            yield env_name, any(typing.get_origin(t) is dict for t in options)


def _unknown_environment_names(environ: Mapping[str, str]) -> list[str]:
    """One line per VAULTSCAN_* variable that is neither a setting nor a documented extra."""
    names = dict(_setting_names(Settings, ENV_PREFIX))
    known = sorted(names) + sorted(ENV_EXTRAS)
    problems = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in names or upper in ENV_EXTRAS:
            continue
        if any(upper.startswith(f"{name}__") for name, is_open in names.items() if is_open):
            continue
        nested = _double_underscore(upper, names)
        if _SERVICE_LINK.match(upper) and (not nested or _LINK_VALUE.match(environ[variable])):
            continue  # VAULTSCAN_METRICS_PORT=tcp://10.0.0.7:9108 is a link, 9108 a typo
        if nested:
            hint = f"a nested setting takes a double underscore: {nested}"
        else:
            close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
            hint = f"did you mean {close[0]}?" if close else "see docs/configuration.md"
        problems.append(f"  - {variable}: unknown environment setting ({hint})")
    return problems


def _double_underscore(upper: str, names: Mapping[str, bool]) -> str | None:
    """`VAULTSCAN_DATABASE__URL` for `VAULTSCAN_DATABASE_URL`, when that is a setting."""
    for index, char in enumerate(upper):
        if char == "_" and index > len(ENV_PREFIX):
            candidate = f"{upper[:index]}__{upper[index + 1 :]}"
            if candidate in names:
                return candidate
    return None


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError naming every unknown VAULTSCAN_* variable: a misspelt setting
    (VAULTSCAN_DATABSE__URL, VAULTSCAN_CONCURENCY) must never fall back to its default."""
    problems = _unknown_environment_names(os.environ if environ is None else environ)
    if problems:
        heading = "invalid configuration (VAULTSCAN_* environment):"
        raise ConfigError("\n".join([heading, *problems]))


def load_settings(path: Path | None = None, *, overrides: dict | None = None) -> Settings:
    """Read and validate the settings; raises ConfigError listing every bad field."""
    check_environment()
    file = config_path(path)
    values = _read_yaml(file) if file is not None else {}
    if file is not None and isinstance(values.get("profile_files"), list):
        # profile files named in the YAML file are relative to that file
        values["profile_files"] = [
            str(file.parent / item) if isinstance(item, str) else item
            for item in values["profile_files"]
        ]
    sources = [str(file)] if file else []
    sources.append("VAULTSCAN_* environment")
    if overrides:
        sources.append("command-line overrides")
    source = ", ".join(sources)
    token = _yaml_values.set(values)
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(), source)) from None
    except SettingsError as exc:
        raise ConfigError(
            f"invalid configuration ({source}): {bounded(mask_secrets(str(exc)), DETAIL_LIMIT)}"
        ) from None
    finally:
        _yaml_values.reset(token)
