"""Check an AWS Signature Version 4 as AWS does ("Create a signed AWS API request",
https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html; "Elements of an
AWS API request signature": the request time must be within 5 minutes of AWS's clock).

The signature is recomputed with botocore's signer (an AWS SDK's canonical request, scope
and key derivation) over the headers the request names as signed. moto accepts any
signature; the browser's signed calls (AWS IoT, DynamoDB) are checked here against the
temporary credentials the emulated identity pool issued, so an app that signs wrongly, with
expired credentials or with another region's scope fails as it would on AWS.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

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


class _Signer(SigV4Auth):
    """botocore's Signature Version 4, over exactly the headers the client said it signed."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        chosen = HTTPHeaders()
        for name in self._signed:
            chosen[name] = request.headers[name]
        return chosen


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
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}" + (f"?{query}" if query else ""),
                         data=body, headers=dict(headers))
    request.context["timestamp"] = stamp
    signer = _Signer(Credentials(match["key"], secret), match["service"], match["region"], signed)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRejected("InvalidSignatureException",
                                "The request signature we calculated does not match the signature "
                                "you provided.")
    return Signed(match["key"], match["region"], match["service"])
