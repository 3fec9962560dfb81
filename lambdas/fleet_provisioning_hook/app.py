"""Lambda entry point of the pre-provisioning hook; the decision lives in `logic`, the
table access in `data`.

AWS IoT invokes the hook synchronously for every RegisterThing on the template and waits
at most 5 seconds for `{"allowProvisioning": ..., "parameterOverrides": {...}}`. A request
that does not parse, a table that does not answer in time, anything unexpected: deny.

Configuration (environment): PROVISIONING_TABLE_NAME, INVENTORY_TABLE_NAME, TEMPLATE_ARN,
CLAIM_CLIENT_ID_PREFIX, CLAIM_RETRY_AFTER_SECONDS, HOOK_BUDGET_MS.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from .data import CLIENT_CONFIG, Deadline, DynamoAllowList
from .logic import AllowListStore, Decision, HookConfig, decide, deny
from .models import PreProvisioningRequest

SERVICE = "fleet-provisioning-hook"
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="IotMultiRegion/FleetProvisioning", service=SERVICE)

# Time kept back from the Lambda deadline for logging, metrics and the response.
SAFETY_MARGIN_SECONDS = 0.3
DEFAULT_BUDGET_MS = 3000

_dynamodb: Any = None


def dynamodb_client() -> Any:
    """One client per execution environment, built during init when Lambda runs us (its
    AWS_REGION is set then), so no request pays for it."""
    global _dynamodb
    if _dynamodb is None:
        _dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)
    return _dynamodb


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    dynamodb_client()


def hook_config(environ: Mapping[str, str]) -> HookConfig:
    return HookConfig(
        template_arn=environ["TEMPLATE_ARN"],
        claim_client_id_prefix=environ.get("CLAIM_CLIENT_ID_PREFIX", ""),
        claim_retry_after=dt.timedelta(seconds=int(environ.get("CLAIM_RETRY_AFTER_SECONDS",
                                                               "600"))))


def budget_seconds(environ: Mapping[str, str], remaining_ms: int) -> float:
    """The configured budget, never beyond what the invocation has left."""
    configured = int(environ.get("HOOK_BUDGET_MS", DEFAULT_BUDGET_MS)) / 1000
    return max(0.0, min(configured, remaining_ms / 1000 - SAFETY_MARGIN_SECONDS))


def evaluate(event: Any, store: AllowListStore, config: HookConfig,
             now: dt.datetime) -> Decision:
    """Parse at the edge, then decide; a malformed request names its fields and denies."""
    try:
        request = parse(event=event, model=PreProvisioningRequest)
    except ValidationError as err:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "<event>" for e in err.errors()})
        logger.warning("malformed pre-provisioning request", extra={"fields": fields})
        return deny("MALFORMED_REQUEST")
    return decide(request, store, config, now)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    environ = os.environ
    try:
        store = DynamoAllowList(
            client=dynamodb_client(), provisioning_table=environ["PROVISIONING_TABLE_NAME"],
            inventory_table=environ["INVENTORY_TABLE_NAME"], region=environ["AWS_REGION"],
            deadline=Deadline(budget_seconds(environ, context.get_remaining_time_in_millis())))
        decision = evaluate(event, store, hook_config(environ), dt.datetime.now(dt.timezone.utc))
    except Exception:  # deny by default: a bug or a misconfiguration never provisions
        logger.exception("hook failed; denying")
        decision = deny("HOOK_ERROR")
    metrics.add_metric(name="ProvisioningAllowed" if decision.allowed else "ProvisioningDenied",
                       unit=MetricUnit.Count, value=1)
    logger.info("pre-provisioning decision", extra={"allowed": decision.allowed,
                                                    "reason": decision.reason,
                                                    "serialNumber": decision.serial})
    return decision.as_response()
