"""AWS timestamps: the fast path gives the instants botocore's own parser gives."""

from __future__ import annotations

import boto3
import pytest
from botocore.utils import parse_timestamp as botocore_parse_timestamp
from dateutil.tz import tzutc

from scanner.aws.timestamps import parse_timestamp, use_fast_timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2019-02-06T19:06:49Z",
        "2026-12-05T10:00:00.123Z",
        "2026-12-05T10:00:00.123456Z",
        "2000-02-29T23:59:59.9Z",
        # not the fast path's form: botocore's parser answers
        "2026-12-05T10:00:00+02:00",
        "Thu, 05 Dec 2026 10:00:00 GMT",
        "1733389200",
        1733389200,
        1733389200.5,
    ],
)
def test_the_same_instant_as_botocore(value: object) -> None:
    ours, theirs = parse_timestamp(value), botocore_parse_timestamp(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


def test_utc_iso_text_is_read_as_utc() -> None:
    parsed = parse_timestamp("2019-02-06T19:06:49.5Z")
    assert (parsed.year, parsed.second, parsed.microsecond) == (2019, 49, 500000)
    assert parsed.tzinfo == tzutc()


def test_clients_of_the_session_parse_with_it() -> None:
    session = boto3.Session(
        aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    use_fast_timestamps(session)
    client = session.client("sts")
    # botocore makes a parser per answer, from the session's factory
    parser = client._endpoint._response_parser_factory.create_parser("query")
    assert parser._timestamp_parser is parse_timestamp
