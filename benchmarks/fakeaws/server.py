"""A fake AWS endpoint for scale benchmarks: one HTTP server on 127.0.0.1 answering the
Organizations, STS, IAM, KMS and Backup calls vaultscan makes, from a synthetic
organization (org.py), after a fixed latency per call, within AWS's request quotas
(quotas.py) answered with the real throttling errors.

Point the SDK at it with AWS_ENDPOINT_URL=http://127.0.0.1:<port>; the service and
region come from the SigV4 credential scope, the member account from the access key the
fake sts:AssumeRole handed out (ASIA<account id>). asyncio, so a call's latency never holds
up another. GET /_fake/stats answers the calls and throttles counted so far (JSON).

Run: python benchmarks/fakeaws/server.py --accounts 1000 --ous 60 --regions us-east-1,...
It prints `listening <port>` once ready and runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakeaws.org import MANAGEMENT_ACCOUNT, FakeOrg  # noqa: E402
from fakeaws.protocol import (  # noqa: E402
    AwsError,
    credential_scope,
    json_answer,
    json_error,
    query_params,
    xml_answer,
    xml_error,
)
from fakeaws.quotas import THROTTLE_CODES, Quotas  # noqa: E402
from fakeaws.services import Backup, Iam, Kms, Organizations, Sts  # noqa: E402

Answer = tuple[int, str, bytes]


class FakeAws:
    def __init__(self, org: FakeOrg, *, latency: float = 0.040, quota_scale: float = 1.0) -> None:
        self.org = org
        self.latency = latency
        self.quotas = Quotas(quota_scale)
        self.organizations = Organizations(org)
        self.iam = Iam(org)
        self.sts = Sts(org)
        self.kms = Kms(org)
        self.backup = Backup(org)

    # --- dispatch ---------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        if target.startswith("/_fake/stats"):
            stats = {"calls": self.quotas.calls, "throttled": self.quotas.throttled}
            return 200, "application/json", json.dumps(stats).encode()
        access_key, region, service = credential_scope(headers.get("authorization", ""))
        account = access_key[4:16] if access_key.startswith("ASIA") else MANAGEMENT_ACCOUNT
        if service in ("iam", "sts"):
            return self._query(service, account, region, body)
        if service in ("organizations", "kms"):
            return self._json(service, account, region, headers, body)
        if service == "backup":
            return self._backup(method, target, account, region)
        return json_error(AwsError("UnknownService", f"service {service!r} is not faked"))

    def _throttled(
        self, service: str, operation: str, account: str, region: str
    ) -> AwsError | None:
        if self.quotas.admit(service, operation, account, region):
            return None
        code, message = THROTTLE_CODES[service]
        return AwsError(code, message)

    def _query(self, service: str, account: str, region: str, body: bytes) -> Answer:
        params = query_params(body)
        operation = params.get("Action", "")
        error = self._throttled(service, operation, account, region)
        if error is not None:
            return xml_error(service, error)
        try:
            if service == "sts":
                result = self.sts.call(operation, params)
            else:
                self._member(account)
                result = self.iam.call(operation, account, params)
        except AwsError as exc:
            return xml_error(service, exc)
        return xml_answer(service, operation, result)

    def _json(
        self, service: str, account: str, region: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        operation = headers.get("x-amz-target", "").rsplit(".", 1)[-1]
        error = self._throttled(service, operation, account, region)
        if error is not None:
            return json_error(error)
        try:
            params: dict[str, Any] = json.loads(body or b"{}")
            if service == "organizations":
                if account != MANAGEMENT_ACCOUNT:
                    raise AwsError("AccessDeniedException", "not the management account")
                return json_answer(self.organizations.call(operation, params))
            self._member(account)
            return json_answer(self.kms.call(operation, account, region, params))
        except AwsError as exc:
            return json_error(exc)

    def _backup(self, method: str, target: str, account: str, region: str) -> Answer:
        path = urlsplit(target).path.rstrip("/")
        if method != "GET" or path != "/backup-vaults":
            return json_error(AwsError("InvalidAction", f"backup {method} {path} is not faked"))
        error = self._throttled("backup", "ListBackupVaults", account, region)
        if error is not None:
            return json_error(error)
        try:
            self._member(account)
        except AwsError as exc:
            return json_error(exc)
        return json_answer(self.backup.list_backup_vaults(account, region))

    def _member(self, account: str) -> None:
        if not self.org.is_member(account):
            raise AwsError("AccessDenied", f"no credentials for account {account}", 403)

    # --- HTTP/1.1 with keep-alive -------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _version = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                status, content_type, payload = self.answer(method, target, headers, body)
                if not target.startswith("/_fake/"):
                    await asyncio.sleep(self.latency)
                extra = ""
                if status >= 400 and content_type != "text/xml":
                    error_type = json.loads(payload).get("__type", "")
                    extra = f"x-amzn-ErrorType: {error_type}\r\n"
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                    f"x-amzn-RequestId: fake\r\n{extra}\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def serve(fake: FakeAws, port: int) -> None:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    async with server:
        await server.serve_forever()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--ous", type=int, default=0, help="default: accounts/15, at least 4")
    parser.add_argument("--regions", default="us-east-1,eu-west-1,ap-southeast-2")
    parser.add_argument("--roles", default="2-2", help="designated roles per account, min-max")
    parser.add_argument("--keys", default="1-2", help="KMS keys per account and region")
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--quota-scale", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args(argv)


def _bounds(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def build(args: argparse.Namespace) -> FakeAws:
    org = FakeOrg(
        accounts=args.accounts,
        ous=args.ous or max(4, args.accounts // 15),
        regions=args.regions.split(","),
        roles=_bounds(args.roles),
        keys=_bounds(args.keys),
    )
    return FakeAws(org, latency=args.latency_ms / 1000, quota_scale=args.quota_scale)


def main(argv: list[str] | None = None) -> None:
    fake = build(parse_args(argv))
    try:
        asyncio.run(serve(fake, parse_args(argv).port))
    except KeyboardInterrupt:
        pass


def query_string(target: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(target).query))


if __name__ == "__main__":
    main()
