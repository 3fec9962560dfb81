"""Lambda entry point of the pre-provisioning hook; the decision lives in `logic`, the
table access in `data`.

AWS IoT invokes the hook synchronously for every RegisterThing on the template and waits
at most 5 seconds for `{"allowProvisioning": ..., "parameterOverrides": {...}}`. A request
that does not parse, a table that does not answer in time, anything unexpected: deny.

Layers: this handler (event in, answer and metrics out) -> `logic` (the decision, no AWS) ->
`data` (the tables, within the time budget); configuration from `config`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.contracts.metrics import FLEET_HOOK, FleetHook

from .config import Config, running_in_lambda
from .data import CLIENT_CONFIG, Deadline, DynamoAllowList, IotRegistry
from .logic import AllowListStore, Decision, HookConfig, Registry, decide, deny
from .models import PreProvisioningRequest

logger = Logger(service=FLEET_HOOK.name)
tracer = Tracer(service=FLEET_HOOK.name)
metrics = Metrics(namespace=FLEET_HOOK.namespace, service=FLEET_HOOK.name)

# Time kept back from the Lambda deadline for logging, metrics and the response.
SAFETY_MARGIN_SECONDS = 0.3

_dynamodb: Any = None
_iot: Any = None


def dynamodb_client() -> Any:
    """One client per execution environment, built during init when Lambda runs us (its
    AWS_REGION is set then), so no request pays for it."""
    global _dynamodb
    if _dynamodb is None:
        _dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)
    return _dynamodb


def iot_client() -> Any:
    """The registry client (only a stale claim's takeover uses it), built like the table's."""
    global _iot
    if _iot is None:
        _iot = boto3.client("iot", config=CLIENT_CONFIG)
    return _iot


if running_in_lambda():
    dynamodb_client()
    iot_client()


def budget_seconds(configured_ms: int, remaining_ms: int) -> float:
    """The configured budget, never beyond what the invocation has left."""
    return max(0.0, min(configured_ms / 1000, remaining_ms / 1000 - SAFETY_MARGIN_SECONDS))


def evaluate(event: Any, store: AllowListStore, registry: Registry, config: HookConfig,
             now: dt.datetime) -> Decision:
    """Parse at the edge, then decide; a malformed request names its fields and denies."""
    try:
        request = parse(event=event, model=PreProvisioningRequest)
    except ValidationError as err:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "<event>" for e in err.errors()})
        logger.warning("malformed pre-provisioning request", extra={"fields": fields})
        return deny("MALFORMED_REQUEST")
    return decide(request, store, registry, config, now)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        config = Config.from_environment()
        # Clients first (Lambda builds them at init): the budget is for table and registry calls.
        dynamodb, iot = dynamodb_client(), iot_client()
        deadline = Deadline(budget_seconds(config.budget_ms,
                                           context.get_remaining_time_in_millis()))
        store = DynamoAllowList(
            client=dynamodb, provisioning_table=config.provisioning_table,
            inventory_table=config.inventory_table, region=config.region, deadline=deadline)
        decision = evaluate(event, store, IotRegistry(client=iot, deadline=deadline),
                            config.rules, dt.datetime.now(dt.timezone.utc))
    except Exception:  # deny by default: a bug or a misconfiguration never provisions
        logger.exception("hook failed; denying")
        decision = deny("HOOK_ERROR")
    metrics.add_metric(name=FleetHook.ALLOWED if decision.allowed else FleetHook.DENIED,
                       unit=MetricUnit.Count, value=1)
    log = logger.warning if decision.detail else logger.info
    log("pre-provisioning decision", extra={"allowed": decision.allowed,
                                            "reason": decision.reason,
                                            "serialNumber": decision.serial,
                                            **({"problems": list(decision.detail)}
                                               if decision.detail else {})})
    return decision.as_response()
