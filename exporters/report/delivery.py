"""Deliver a rendered report: files in a directory, objects in S3, an e-mail over SMTP.

Every configured destination is tried even when an earlier one failed; the failures are
returned (and raised together by `deliver_or_raise`), so a broken mail relay never stops
the report from reaching S3. File names carry the period's end date, so a weekly report
does not overwrite last week's.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from exporters.report.data import Report

log = logging.getLogger(__name__)

EXTENSIONS = {"html": "html", "md": "md", "json": "json", "csv": "csv"}
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}
SMTP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Document:
    format: str  # html, md, json, csv
    name: str  # file name: vaultscan-report-YYYY-MM-DD.html
    text: str


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)  # where: a path, s3://..., mailto:...
    failed: list[str] = field(default_factory=list)  # destination: reason


class DeliveryError(RuntimeError):
    """At least one destination could not be reached; the message names each."""


def render_documents(report: Report, formats: list[str]) -> list[Document]:
    from exporters.report import RENDERERS

    names = {"md": "markdown"}
    stem = f"vaultscan-report-{report.period_end:%Y-%m-%d}"
    return [
        Document(fmt, f"{stem}.{EXTENSIONS[fmt]}", RENDERERS[names.get(fmt, fmt)](report))
        for fmt in formats
    ]


def to_directory(documents: list[Document], directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for document in documents:
        path = directory / document.name
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(document.text, encoding="utf-8")
        partial.replace(path)  # readers never see half a report
        written.append(str(path))
    return written


def to_s3(documents: list[Document], uri: str, client: Any) -> list[str]:
    """Upload each document under the URI's prefix (s3://bucket/prefix/) with `client`, an
    S3 client the caller built (scanner.outlets.report_s3_client): exporters never build
    AWS clients themselves."""
    if client is None:
        raise DeliveryError(f"no S3 client to upload to {uri} with")
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    s3 = client
    uploaded = []
    for document in documents:
        key = f"{prefix}{document.name}"
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=document.text.encode("utf-8"),
            ContentType=CONTENT_TYPES[document.format],
        )
        uploaded.append(f"s3://{bucket}/{key}")
    return uploaded


def build_email(documents: list[Document], email: Any, report: Report) -> EmailMessage:
    """The Markdown (or the first document) as the text body, the HTML as the HTML body,
    every document attached."""
    message = EmailMessage()
    message["Subject"] = email.subject.format(period_end=f"{report.period_end:%Y-%m-%d}")
    message["From"] = email.sender
    message["To"] = ", ".join(email.to)
    by_format = {document.format: document for document in documents}
    text = by_format.get("md") or documents[0]
    message.set_content(text.text if text.format != "html" else "The report is attached as HTML.\n")
    if "html" in by_format:
        message.add_alternative(by_format["html"].text, subtype="html")
    for document in documents:
        maintype, subtype = CONTENT_TYPES[document.format].split(";")[0].split("/")
        message.add_attachment(
            document.text.encode("utf-8"),
            maintype=maintype,
            subtype=subtype,
            filename=document.name,
        )
    return message


def to_email(documents: list[Document], email: Any, report: Report) -> list[str]:
    message = build_email(documents, email, report)
    with smtplib.SMTP(email.smtp_host, email.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if email.starttls:
            smtp.starttls()
        if email.username:
            smtp.login(email.username, email.password or "")
        smtp.send_message(message)
    return [f"mailto:{address}" for address in email.to]


def deliver(report: Report, settings: Any, *, s3_client: Any = None) -> DeliveryResult:
    """Render `settings.formats` and send them to every destination of
    `settings.delivery` (a scanner.config.ReportSettings)."""
    documents = render_documents(report, list(settings.formats))
    delivery = settings.delivery
    steps: list[tuple[str, Callable[[], list[str]]]] = []
    if delivery.directory is not None:
        steps.append((str(delivery.directory), lambda: to_directory(documents, delivery.directory)))
    if delivery.s3_uri:
        steps.append((delivery.s3_uri, lambda: to_s3(documents, delivery.s3_uri, s3_client)))
    if delivery.email.to:
        steps.append(
            (
                f"smtp://{delivery.email.smtp_host}:{delivery.email.smtp_port}",
                lambda: to_email(documents, delivery.email, report),
            )
        )
    result = DeliveryResult()
    for where, step in steps:
        try:
            result.delivered += step()
        except Exception as exc:  # each destination on its own: one failing stops none
            reason = f"{where}: {type(exc).__name__}: {exc}"
            log.error("report delivery failed destination=%s error=%s", where, exc)
            result.failed.append(reason)
    return result


def deliver_or_raise(report: Report, settings: Any, *, s3_client: Any = None) -> list[str]:
    """deliver, raising DeliveryError naming every destination that failed."""
    result = deliver(report, settings, s3_client=s3_client)
    if not result.delivered and not result.failed:
        raise DeliveryError(
            "no delivery destination configured: set report.delivery.directory, "
            "report.delivery.s3_uri or report.delivery.email.to"
        )
    if result.failed:
        raise DeliveryError("; ".join(result.failed))
    return result.delivered
