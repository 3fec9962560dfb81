"""Lambda entry point of the JITR certificate check; the logic lives in `checks`.

Invoked synchronously by the JITR state machine (never asynchronously, so no Lambda DLQ
or on-failure destination: the state machine's Catch/rollback and the rule's DLQ own
failure handling). Configuration: env `CA_CERTIFICATE_PEM` (public CA certificate(s)).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from aws_lambda_powertools.utilities.validation import SchemaValidationError, validate

from .checks import check_certificate, load_ca_certificates

SERVICE = "jitr-certificate-check"
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="IotMultiRegion/Jitr", service=SERVICE)

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["certificatePem"],
    "properties": {"certificatePem": {"type": "string", "minLength": 1, "maxLength": 65536}},
}


def error_result(error: str, reason: str) -> dict[str, object]:
    """A result the state machine routes to rollback (not to revocation): the event or our
    configuration is wrong, which says nothing about the certificate."""
    return {"valid": False, "reason": reason, "thingName": None, "notAfter": None,
            "error": error}


def evaluate(event: Any, ca_pem: str | None, now: dt.datetime) -> dict[str, object]:
    """The handler's whole decision, free of Lambda context (tested directly)."""
    try:
        validate(event=event, schema=EVENT_SCHEMA)
    except SchemaValidationError as err:
        return error_result("InvalidEvent", f"event must be {{'certificatePem': '<PEM>'}}: {err}")
    if not ca_pem:
        return error_result("Misconfigured", "CA_CERTIFICATE_PEM is not set")
    try:
        cas = load_ca_certificates(ca_pem)
    except ValueError as err:
        return error_result("Misconfigured", str(err))
    return check_certificate(event["certificatePem"], cas, now).as_payload()


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, object]:
    result = evaluate(event, os.environ.get("CA_CERTIFICATE_PEM"), dt.datetime.now(dt.timezone.utc))
    outcome = "Accepted" if result["valid"] else ("Errored" if result["error"] else "Rejected")
    metrics.add_metric(name=f"Certificate{outcome}", unit=MetricUnit.Count, value=1)
    logger.info("certificate check", extra={"outcome": outcome, "reason": result["reason"],
                                            "thingName": result["thingName"]})
    return result
