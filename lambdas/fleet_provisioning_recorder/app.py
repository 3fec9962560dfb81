"""Lambda entry point of the fleet-provisioning recorder.

Triggered by this region's replica stream of the provisioning table through an event
source mapping whose filter passes only allow-list entries that turned CLAIMED *in this
region* (a replica's stream also carries other regions' writes). Each record is handled on
its own (partial batch responses): a claim AWS IoT has not provisioned yet is reported as
failed and retried by the mapping; after the retries the record goes to the DLQ.

Configuration (environment): INVENTORY_TABLE_NAME, PROVISIONING_TABLE_NAME,
CONFIRM_WAIT_SECONDS, GIVE_UP_AFTER_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from .data import DynamoAllowList, DynamoInventory, IotRegistry
from .logic import InventoryBusy, NotYetProvisioned, Timing, claim_from_image
from .logic import record as record_claim

SERVICE = "fleet-provisioning-recorder"
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="IotMultiRegion/FleetProvisioning", service=SERVICE)
# Failed records are reported (ReportBatchItemFailures) even when all fail: the mapping
# retries from the first failure either way, without a stack trace per batch.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams,
                           raise_on_entire_batch_failure=False)


def timing(environ: Any) -> Timing:
    return Timing(wait_seconds=float(environ.get("CONFIRM_WAIT_SECONDS", "20")),
                  poll_seconds=1.0,
                  give_up_after=dt.timedelta(seconds=int(environ.get("GIVE_UP_AFTER_SECONDS",
                                                                     "3600"))))


@dataclass(frozen=True)
class Ports:
    registry: IotRegistry
    inventory: DynamoInventory
    allow_list: DynamoAllowList


_ports: Ports | None = None


def ports() -> Ports:
    """AWS clients, built once per execution environment."""
    global _ports
    if _ports is None:
        dynamodb = boto3.resource("dynamodb")
        _ports = Ports(IotRegistry(boto3.client("iot")),
                       DynamoInventory(dynamodb.Table(os.environ["INVENTORY_TABLE_NAME"])),
                       DynamoAllowList(dynamodb.Table(os.environ["PROVISIONING_TABLE_NAME"])))
    return _ports


def handle_record(record: DynamoDBRecord) -> str:
    """One stream record; raising marks it failed (the mapping retries it)."""
    region = os.environ["AWS_REGION"]
    claim = claim_from_image(record.dynamodb.new_image if record.dynamodb else None, region)
    if claim is None:
        return "IGNORED"  # the mapping's filter should have kept it away
    aws = ports()
    try:
        outcome = record_claim(claim, aws.registry, aws.inventory, aws.allow_list,
                               timing(os.environ), now=lambda: dt.datetime.now(dt.timezone.utc),
                               sleep=time.sleep)
    except (NotYetProvisioned, InventoryBusy) as err:
        metrics.add_metric(name="DeviceRetried", unit=MetricUnit.Count, value=1)
        logger.info("record retried later", extra={"reason": str(err)})
        raise
    metrics.add_metric(name=f"Device{outcome.title()}", unit=MetricUnit.Count, value=1)
    log = logger.warning if outcome in ("CONFLICT", "UNCONFIRMED") else logger.info
    log("fleet device recorded", extra={"outcome": outcome, "thingName": claim.serial,
                                        "certificateId": claim.certificate_id})
    return outcome


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle_record,
                                    processor=processor, context=context)
