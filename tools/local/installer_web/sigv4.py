"""Check an AWS Signature Version 4 as AWS does ("Create a signed AWS API request",
https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html; "Elements of an
AWS API request signature": the request time must be within 5 minutes of AWS's clock).

moto accepts any signature; the browser's signed calls (AWS IoT, DynamoDB) are checked here
against the temporary credentials the emulated identity pool issued, so an app that signs
wrongly, with expired credentials or with another region's scope fails as it would on AWS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = dt.timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$")


class SignatureRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Signed:
    access_key_id: str
    region: str
    service: str


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                   for k, v in parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{k}={v}" for k, v in pairs)


def verify(*, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
           secret_for: Callable[[str], str | None], now: dt.datetime) -> Signed:
    """`headers` with lower-case names; `secret_for(access key id)` -> secret or None.
    Raises SignatureRejected with AWS's error code."""
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    if match is None:
        raise SignatureRejected("MissingAuthenticationTokenException",
                                "Missing or malformed SigV4 Authorization header")
    secret = secret_for(match["key"])
    if secret is None:
        raise SignatureRejected("UnrecognizedClientException",
                                "The security token included in the request is invalid.")
    stamp = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise SignatureRejected("IncompleteSignatureException", "X-Amz-Date is missing") from None
    if abs(now - when) > MAX_SKEW:
        raise SignatureRejected("InvalidSignatureException",
                                f"Signature expired: {stamp} is now earlier or later than 5 minutes")
    if stamp[:8] != match["date"]:
        raise SignatureRejected("InvalidSignatureException", "credential date is not the request's")
    signed = match["signed"].split(";")
    if "host" not in signed or any(h not in headers for h in signed):
        raise SignatureRejected("InvalidSignatureException", "a signed header is missing")
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    payload = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method, quote(path, safe="/~"), _canonical_query(query),
                           canonical_headers, match["signed"], payload])
    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), match["date"]), match["region"]),
                      match["service"]), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRejected("InvalidSignatureException",
                                "The request signature we calculated does not match the signature "
                                "you provided.")
    return Signed(match["key"], match["region"], match["service"])
