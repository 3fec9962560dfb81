"""Request bodies, parsed with the Powertools parser (pydantic, strict, no extra fields).

The registration body is the seed's device contract, unchanged: `{"device_uid": ...,
"device_token": ...}` with `device_token = hex(SHA256("<salt>//<uid>"))`. Two optional
fields extend it: `device_uid_2` (a second identifier for batches whose UIDs are predictable;
token = hex(SHA256("<salt>//<uid>+<uid2>"))) and `csr` (PEM; the private key stays on the
device). API Gateway validates the same shape first (components/cvm/*.schema.json, kept equal
to these models by tests); this is the function's own check, so a request that bypasses the
gateway model is refused just the same.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import BaseModel, Field, ValidationError, parse
from pydantic import ConfigDict

from lambdas.contracts.cvm_device import UID2_MAX_LENGTH, UID2_PATTERN
from lambdas.contracts.things import DEVICE_UID_PATTERN

# Thing-name characters (the UID becomes the thing name) minus nothing; no '+' so that the
# token input "<uid>+<uid2>" is unambiguous.
UID_PATTERN = DEVICE_UID_PATTERN  # lambdas/contracts/things.py
TOKEN_PATTERN = r"^[0-9a-fA-F]{64}$"
SIGNATURE_PATTERN = r"^[A-Za-z0-9+/]+={0,2}$"
# The WAF's AWSManagedRulesCommonRuleSet blocks a body over 8 KB (SizeRestrictions_BODY):
# every body the models admit must fit, or a valid request would meet a 403 "request blocked".
# A CSR of 6 144 characters (a 4096-bit RSA CSR is under 2 000) leaves room for a rotation's
# signature and the JSON escapes of its line breaks.
CSR_MAX_LENGTH = 6144
MAX_BODY_BYTES = 8192


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RegistrationRequest(_Strict):
    device_uid: str = Field(min_length=1, max_length=128, pattern=UID_PATTERN)
    device_token: str = Field(min_length=64, max_length=64, pattern=TOKEN_PATTERN)
    device_uid_2: str | None = Field(default=None, min_length=1, max_length=UID2_MAX_LENGTH,
                                     pattern=UID2_PATTERN)
    csr: str | None = Field(default=None, min_length=1, max_length=CSR_MAX_LENGTH)


class RotationRequest(_Strict):
    """A registered device asks for a new certificate for a new key (`csr`), proving that it
    holds its current certificate's key: `signature` = base64 of its signature (ECDSA or
    RSA PKCS#1 v1.5, SHA-256) over `rotation_message(device_uid, timestamp, csr)`."""

    device_uid: str = Field(min_length=1, max_length=128, pattern=UID_PATTERN)
    csr: str = Field(min_length=1, max_length=CSR_MAX_LENGTH)
    timestamp: int = Field(ge=0, le=2**40)
    signature: str = Field(min_length=4, max_length=1024, pattern=SIGNATURE_PATTERN)


Model = TypeVar("Model", bound=_Strict)


class MalformedRequest(Exception):
    """400: names the offending field (`body` when the body itself is unusable)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _first_problem(error: ValidationError) -> MalformedRequest:
    first: Any = error.errors(include_url=False, include_input=False)[0]
    location = [str(part) for part in first.get("loc", ())]
    kind = first.get("type", "")
    if kind == "json_invalid" or not location:
        return MalformedRequest("body", "must be a JSON object")
    if kind == "extra_forbidden":
        return MalformedRequest(location[0], "is not a known field")
    if kind == "missing":
        return MalformedRequest(location[0], "is required")
    # The message describes the constraint, never echoes the value (it may be a token).
    return MalformedRequest(location[0], str(first.get("msg", "is invalid")))


def parse_body(body: str | None, model: type[Model]) -> Model:
    """The request body as `model`, or MalformedRequest naming the first bad field."""
    if body is None or not body.strip():
        raise MalformedRequest("body", "is required (a JSON object)")
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise MalformedRequest("body", f"is larger than {MAX_BODY_BYTES} bytes")
    if not body.lstrip().startswith("{"):
        raise MalformedRequest("body", "must be a JSON object")
    try:
        # `parse` validates JSON text as well (pydantic's validate_json): one pass, and a
        # JSON syntax error is a ValidationError like any other.
        return parse(event=body, model=model)  # type: ignore[call-overload]
    except ValidationError as error:
        raise _first_problem(error) from None
