"""The outlets the settings switch on, built with the scanner's own AWS identity (the
exporters never build AWS clients themselves: they get them from here)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from exporters.outlets import Outlet
from scanner.config import Settings

log = logging.getLogger(__name__)


def aws_session(settings: Settings) -> Any:
    import boto3

    return boto3.Session(profile_name=settings.organization.profile)


def report_s3_client(settings: Settings) -> Any:
    """The S3 client report delivery uploads with (None: no S3 destination configured)."""
    if not settings.report.delivery.s3_uri:
        return None
    return aws_session(settings).client("s3")


def caller_account(session: Any, region: str) -> str:
    """The scanner's own account (sts:GetCallerIdentity needs no permission)."""
    return str(session.client("sts", region_name=region).get_caller_identity()["Account"])


def securityhub_outlet(settings: Settings, session: Any, region: str | None = None) -> Outlet:
    from exporters.outlets.securityhub import SecurityHubOutlet

    region = region or settings.securityhub.region or settings.organization.region
    return SecurityHubOutlet(
        session.client("securityhub", region_name=region),
        account_id=caller_account(session, region),
        region=region,
        partition=settings.organization.partition,
    )


def ocsf_outlet(settings: Settings, session: Any, **overrides: Any) -> Outlet:
    from exporters.outlets.ocsf import OcsfOutlet

    path = overrides.get("path", settings.ocsf.path)
    s3_uri = overrides.get("s3_uri", settings.ocsf.s3_uri)
    region = settings.ocsf.region or settings.organization.region
    return OcsfOutlet(
        path=path,
        s3_uri=s3_uri,
        s3_client=session.client("s3", region_name=region) if s3_uri else None,
        partition=settings.organization.partition,
    )


def notification_outlets(settings: Settings, session: Any, metrics: Any = None) -> list[Outlet]:
    from exporters.outlets.delivery import RetryPolicy
    from exporters.outlets.notify import SlackOutlet, SnsOutlet, WebhookOutlet

    config = settings.notifications
    options: dict[str, Any] = {
        "max_items": config.max_items,
        "retry": RetryPolicy(config.attempts, config.backoff_seconds, config.timeout_seconds),
        "link_url": config.link_url,
        "on_retry": metrics.retried if metrics is not None else None,
    }
    outlets: list[Outlet] = []
    if config.slack.webhook_url is not None:
        outlets.append(SlackOutlet(config.slack.webhook_url.get_secret_value(), **options))
    if config.sns.topic_arn:
        region = config.sns.topic_arn.split(":")[3]
        client = session.client("sns", region_name=region)
        outlets.append(SnsOutlet(client, config.sns.topic_arn, **options))
    if config.webhook.url is not None:
        secret = config.webhook.secret.get_secret_value() if config.webhook.secret else None
        outlets.append(WebhookOutlet(config.webhook.url.get_secret_value(), secret, **options))
    return outlets


def configured_outlets(
    settings: Settings, *, session: Any = None, metrics: Any = None
) -> list[Outlet]:
    """Every outlet the settings enable, in the order they run after a scan."""
    if not any_outlet_enabled(settings):
        return []
    session = session or aws_session(settings)
    outlets: list[Outlet] = []
    if settings.securityhub.enabled:
        outlets.append(securityhub_outlet(settings, session))
    if settings.ocsf.enabled:
        outlets.append(ocsf_outlet(settings, session))
    outlets += notification_outlets(settings, session, metrics)
    return outlets


def publish_run(
    settings: Settings,
    engine: Any,
    run_id: int,
    *,
    outlets: list[Outlet] | None = None,
    session: Any = None,
    metrics: Any = None,
) -> dict[str, bool]:
    """Publish the state after `run_id` to every enabled outlet; outlet name -> delivered.
    Never raises: building the outlets or reading the findings failing counts as the
    "setup" outlet failing."""
    from exporters.outlets import load_findings, publish_all

    try:
        if outlets is None:
            outlets = configured_outlets(settings, session=session, metrics=metrics)
        scan = load_findings(engine, run_id)
    except Exception as exc:  # never fail the scan for an outlet
        log.error("outlets skipped run_id=%s error=%s: %s", run_id, type(exc).__name__, exc)
        if metrics is not None:
            metrics.delivered("setup", False)
        return {"setup": False}
    return publish_all(outlets, scan, metrics)


def after_scan_step(
    settings: Settings, engine: Any, *, session: Any = None, metrics: Any = None
) -> Callable[[int], None] | None:
    """The post-scan step of `serve`: publish_run for each finished run, or None when no
    outlet is enabled. Outlets are built on the first scan, not at start-up, so a slow or
    unreachable STS endpoint never delays start-up; a failure to build them is logged,
    counted and tried again on the next scan."""
    if not any_outlet_enabled(settings):
        return None
    built: list[Outlet] = []
    # scheduled scans and event-driven rescans run on different threads: publish one
    # run at a time, so two syncs never interleave their Security Hub imports
    one_at_a_time = threading.Lock()

    def step(run_id: int) -> None:
        with one_at_a_time:
            _step(run_id)

    def _step(run_id: int) -> None:
        if not built:
            try:
                built.extend(configured_outlets(settings, session=session, metrics=metrics))
            except Exception as exc:
                log.error("outlets not built error=%s: %s", type(exc).__name__, exc)
                if metrics is not None:
                    metrics.delivered("setup", False)
                return
        publish_run(settings, engine, run_id, outlets=built, metrics=metrics)

    return step


def any_outlet_enabled(settings: Settings) -> bool:
    notifications = settings.notifications
    return (
        settings.securityhub.enabled
        or settings.ocsf.enabled
        or notifications.slack.webhook_url is not None
        or bool(notifications.sns.topic_arn)
        or notifications.webhook.url is not None
    )
