"""Wire formats of the AWS protocols the scanner's calls use: query/XML (IAM, STS),
JSON 1.1 (Organizations, KMS) and REST-JSON (Backup), answers and errors."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}
JSON_TYPE = "application/x-amz-json-1.1"


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def to_xml(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(f"<{key}>{to_xml(item)}</{key}>" for key, item in value.items())
    if isinstance(value, list):
        return "".join(f"<member>{to_xml(item)}</member>" for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def query_params(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def member_list(params: dict[str, str], name: str) -> list[str]:
    """`Name.member.1`, `Name.member.2`, ... of a query-protocol request."""
    out = []
    index = 1
    while f"{name}.member.{index}" in params:
        out.append(params[f"{name}.member.{index}"])
        index += 1
    return out


def xml_answer(service: str, operation: str, result: dict[str, Any]) -> tuple[int, str, bytes]:
    namespace = NAMESPACES[service]
    text = (
        f'<{operation}Response xmlns="{namespace}"><{operation}Result>{to_xml(result)}'
        f"</{operation}Result><ResponseMetadata><RequestId>fake</RequestId>"
        f"</ResponseMetadata></{operation}Response>"
    )
    return 200, "text/xml", text.encode()


def xml_error(service: str, error: AwsError) -> tuple[int, str, bytes]:
    namespace = NAMESPACES[service]
    text = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        "</Error><RequestId>fake</RequestId></ErrorResponse>"
    )
    return error.status, "text/xml", text.encode()


def json_answer(result: dict[str, Any]) -> tuple[int, str, bytes]:
    return 200, JSON_TYPE, json.dumps(result, separators=(",", ":")).encode()


def json_error(error: AwsError) -> tuple[int, str, bytes]:
    body = {"__type": error.code, "message": error.message, "Message": error.message}
    return error.status, JSON_TYPE, json.dumps(body).encode()


def credential_scope(authorization: str) -> tuple[str, str, str]:
    """(access key id, region, service) from a SigV4 Authorization header."""
    start = authorization.find("Credential=")
    if start < 0:
        return "", "", ""
    scope = authorization[start + len("Credential=") :].split(",", 1)[0].split("/")
    if len(scope) < 4:
        return "", "", ""
    return scope[0], scope[2], scope[3]
