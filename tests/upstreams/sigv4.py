"""Server-side AWS Signature Version 4 verification, written from AWS's specification.

Deliberately independent of botocore (which the gateway signs with), so a test passes
only if the signature covers exactly the bytes that went over the wire: the canonical
request is rebuilt from the method, the raw path and query, the signed headers and a
hash of the body as received.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from multidict import CIMultiDictProxy

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9\-;.]+), Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


class SignatureRejected(Exception):
    """Why AWS would refuse the request: its error type (for `x-amzn-ErrorType`) and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def verify(
    method: str,
    raw_path: str,
    query: str,
    headers: CIMultiDictProxy[str],
    body: bytes,
    credentials: Mapping[str, AwsCredentials],
    region: str,
    service: str,
) -> None:
    """Raise `SignatureRejected` unless the request is signed by one of `credentials` for region and service."""
    match = _AUTHORIZATION.fullmatch(headers.get("Authorization", ""))
    if match is None:
        raise SignatureRejected(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        )
    found = credentials.get(match["key"])
    if found is None:
        raise SignatureRejected("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = _check_scope(match, headers, region, service)
    signed = match["signed"].split(";")
    _check_signed_headers(signed, headers, found)
    canonical = "\n".join(
        [
            method,
            _canonical_uri(raw_path),
            _canonical_query(query),
            "".join(f"{name}:{_header_value(headers, name)}\n" for name in signed),
            match["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(
        _signing_key(found.secret_key, match["date"], region, service), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRejected(
            "InvalidSignatureException",
            "The request signature we calculated does not match the "
            "signature you provided. Check your AWS Secret Access Key and signing method. Consult "
            "the service documentation for details.",
        )


def _check_scope(match: re.Match[str], headers: CIMultiDictProxy[str], region: str, service: str) -> str:
    amz_date = headers.get("X-Amz-Date", "")
    if not amz_date.startswith(match["date"]):
        raise SignatureRejected(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        )
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs((datetime.now(UTC) - signed_at).total_seconds()) > MAX_SKEW_S:
        raise SignatureRejected("InvalidSignatureException", "Signature expired.")
    if match["region"] != region:
        raise SignatureRejected(
            "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{match['region']}'."
        )
    if match["service"] != service:
        raise SignatureRejected(
            "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
        )
    return amz_date


def _check_signed_headers(signed: list[str], headers: CIMultiDictProxy[str], found: AwsCredentials) -> None:
    if signed != sorted(signed) or not {"host", "x-amz-date"} <= set(signed):
        raise SignatureRejected("InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed, in order.")
    if found.session_token is not None and (
        headers.get("X-Amz-Security-Token") != found.session_token or "x-amz-security-token" not in signed
    ):
        raise SignatureRejected("UnrecognizedClientException", "The security token included in the request is invalid.")


def _header_value(headers: CIMultiDictProxy[str], name: str) -> str:
    return ",".join(re.sub(r"\s+", " ", v.strip()) for v in headers.getall(name, []))


def _canonical_uri(raw_path: str) -> str:
    # Every service but S3 encodes the path a second time: the `%` of `%3A` becomes `%25`.
    return quote(raw_path, safe="/~")


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs))


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
