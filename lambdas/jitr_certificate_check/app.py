"""Lambda entry point of the JITR certificate check; the logic lives in `checks`.

Invoked synchronously by the JITR state machine (never asynchronously, so no Lambda DLQ
or on-failure destination: the state machine's Catch/rollback and the rule's DLQ own
failure handling). Layers: this handler (event in, result and metrics out) -> `checks`
(the decision, no I/O); configuration from `config`. The check calls no AWS API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from aws_lambda_powertools.utilities.validation import SchemaValidationError, validate

from lambdas.contracts.environment import EnvironmentProblem
from lambdas.contracts.metrics import JITR_CHECK, Jitr

from .checks import check_certificate
from .config import Config

logger = Logger(service=JITR_CHECK.name)
tracer = Tracer(service=JITR_CHECK.name)
metrics = Metrics(namespace=JITR_CHECK.namespace, service=JITR_CHECK.name)

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["certificatePem"],
    "properties": {"certificatePem": {"type": "string", "minLength": 1, "maxLength": 65536}},
}


def error_result(error: str, reason: str) -> dict[str, object]:
    """A result the state machine routes to rollback (not to revocation): the event or our
    configuration is wrong, which says nothing about the certificate."""
    return {"valid": False, "reason": reason, "thingName": None, "notAfter": None,
            "subjectThingName": None, "error": error}


def evaluate(event: Any, config: Config | Exception, now: dt.datetime) -> dict[str, object]:
    """The handler's whole decision, free of Lambda context (tested directly). `config` is
    the configuration, or why it could not be read."""
    try:
        validate(event=event, schema=EVENT_SCHEMA)
    except SchemaValidationError as err:
        return error_result("InvalidEvent", f"event must be {{'certificatePem': '<PEM>'}}: {err}")
    if isinstance(config, Exception):
        return error_result("Misconfigured", str(config))
    return check_certificate(event["certificatePem"], config.cas, now).as_payload()


def configuration() -> Config | Exception:
    try:
        return Config.from_environment()
    except (EnvironmentProblem, ValueError) as problem:
        return problem


OUTCOME_METRICS = {"Accepted": Jitr.ACCEPTED, "Rejected": Jitr.REJECTED,
                   "Errored": Jitr.ERRORED}


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, object]:
    result = evaluate(event, configuration(), dt.datetime.now(dt.timezone.utc))
    outcome = "Accepted" if result["valid"] else ("Errored" if result["error"] else "Rejected")
    metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)
    logger.info("certificate check", extra={"outcome": outcome, "reason": result["reason"],
                                            "thingName": result["thingName"]})
    return result
