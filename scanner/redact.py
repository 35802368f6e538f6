"""Keep secrets out of everything vaultscan prints or logs.

`mask_secrets` replaces the secret part of what may carry one: URL passwords (userinfo
and `?password=`), AWS secret keys, session tokens and request signatures in the shapes
botocore and the AWS APIs use (JSON, XML, headers, keyword arguments). `shown_value` is
how a configuration error echoes an offending value: masked and length-bounded. Logging
goes through `RedactingFormatter`, and the AWS SDK's own loggers are held at INFO, where
they log neither requests nor responses.
"""

from __future__ import annotations

import logging
import re
import reprlib

MASK = "***"
# The longest echo of a user's value in an error message.
SHOWN_LIMIT = 80
# Loggers that print whole requests and responses (credentials included) at DEBUG.
CHATTY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")

_SECRET_NAMES = (
    r"SecretAccessKey|SessionToken|secret_access_key|session_token|aws_secret_access_key"
    r"|aws_session_token|X-Amz-Security-Token|X-Amz-Signature|Signature|password|passwd|pwd"
    r"|sslpassword|secret|token"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host (any scheme): the password
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/?#@\s'\"]*:)[^@/\s'\"]+(@)"), rf"\1{MASK}\2"),
    # ?password=... / &sslpassword=... in URLs and libpq strings, X-Amz-Security-Token=...
    (
        re.compile(rf"(?i)((?:^|[?&;\s,(])(?:{_SECRET_NAMES})=)[^&\s'\",)]+"),
        rf"\1{MASK}",
    ),
    # "SecretAccessKey": "..." / 'SessionToken': '...' (JSON, Python reprs)
    (
        re.compile(rf"(?i)(['\"](?:{_SECRET_NAMES})['\"]\s*:\s*)(b?['\"])[^'\"]*(['\"])"),
        rf"\1\2{MASK}\3",
    ),
    # <SecretAccessKey>...</SecretAccessKey> (the STS query API answers in XML)
    (re.compile(r"(?i)(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)"), rf"\1{MASK}\3"),
    # headers: X-Amz-Security-Token: ..., Authorization: AWS4-HMAC-SHA256 ... Signature=...
    (re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\n}]+"), rf"\1{MASK}"),
    # access key ids: keep the first and last four characters, enough to tell keys apart
    (re.compile(r"\b((?:AKIA|ASIA)[A-Z0-9])[A-Z0-9]{8,}([A-Z0-9]{4})\b"), r"\1…\2"),
)


def mask_secrets(text: str) -> str:
    """`text` with every secret it visibly carries replaced by ***."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def bounded(text: str, limit: int = SHOWN_LIMIT) -> str:
    """At most `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


class _MaskingRepr(reprlib.Repr):
    """reprlib's bounded repr (a few levels and items, however large or shared the value:
    a YAML alias bomb is a billion items), each string masked before it is shortened."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxdict = 6
        self.maxstring = self.maxother = limit

    def repr_str(self, value: str, level: int) -> str:
        return super().repr_str(mask_secrets(value), level)


def shown_value(value: object, limit: int = SHOWN_LIMIT) -> str:
    """How an offending configuration value is echoed: repr, masked, bounded."""
    return bounded(mask_secrets(_MaskingRepr(limit).repr(value)), limit)


class RedactingFormatter(logging.Formatter):
    """A formatter whose every output line (message, extra fields, traceback) is masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def quiet_chatty_loggers(level: int) -> None:
    """Hold the SDK's loggers at INFO or above even under -vv: at DEBUG botocore logs
    every request's headers (X-Amz-Security-Token) and every response body (AssumeRole's
    SecretAccessKey and SessionToken)."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
