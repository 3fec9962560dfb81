"""Lambda entry point of the fleet-provisioning recorder.

Triggered by this region's replica stream of the provisioning table through an event
source mapping whose filter passes only allow-list entries that turned CLAIMED *in this
region* (a replica's stream also carries other regions' writes). Each record is handled on
its own (partial batch responses): a claim AWS IoT has not provisioned yet is reported as
failed and retried by the mapping; after the retries the record goes to the DLQ.

Layers: this handler (stream records in, outcome and metrics out) -> `logic` (the decision,
no AWS) -> `data` (AWS IoT and the tables); configuration from `config`.
"""

from __future__ import annotations

import datetime as dt
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

from lambdas.contracts.metrics import FLEET_RECORDER, FleetRecorder

from .config import Config
from .data import DynamoAllowList, DynamoInventory, IotRegistry
from .logic import InventoryBusy, NotYetProvisioned, claim_from_image
from .logic import record as record_claim

logger = Logger(service=FLEET_RECORDER.name)
tracer = Tracer(service=FLEET_RECORDER.name)
metrics = Metrics(namespace=FLEET_RECORDER.namespace, service=FLEET_RECORDER.name)
# Failed records are reported (ReportBatchItemFailures) even when all fail: the mapping
# retries from the first failure either way, without a stack trace per batch.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams,
                           raise_on_entire_batch_failure=False)


@dataclass(frozen=True)
class Ports:
    config: Config
    registry: IotRegistry
    inventory: DynamoInventory
    allow_list: DynamoAllowList


_ports: Ports | None = None


def ports() -> Ports:
    """Configuration and AWS clients, built once per execution environment."""
    global _ports
    if _ports is None:
        config = Config.from_environment()
        dynamodb = boto3.resource("dynamodb")
        _ports = Ports(config, IotRegistry(boto3.client("iot")),
                       DynamoInventory(dynamodb.Table(config.inventory_table),
                                       config.provisioning_table),
                       DynamoAllowList(dynamodb.Table(config.provisioning_table)))
    return _ports


def handle_record(record: DynamoDBRecord) -> str:
    """One stream record; raising marks it failed (the mapping retries it)."""
    aws = ports()
    claim = claim_from_image(record.dynamodb.new_image if record.dynamodb else None,
                             aws.config.region)
    if claim is None:
        return "IGNORED"  # the mapping's filter should have kept it away
    try:
        outcome = record_claim(claim, aws.registry, aws.inventory, aws.allow_list,
                               aws.config.timing, now=lambda: dt.datetime.now(dt.timezone.utc),
                               sleep=time.sleep)
    except (NotYetProvisioned, InventoryBusy) as err:
        metrics.add_metric(name=FleetRecorder.RETRIED, unit=MetricUnit.Count, value=1)
        logger.info("record retried later", extra={"reason": str(err)})
        raise
    metrics.add_metric(name=FleetRecorder.outcome(outcome), unit=MetricUnit.Count, value=1)
    log = logger.warning if outcome in ("CONFLICT", "UNCONFIRMED", "STALE", "SUPERSEDED",
                                        "SHARED_CERTIFICATE") else logger.info
    log("fleet device recorded", extra={"outcome": outcome, "thingName": claim.serial,
                                        "certificateId": claim.certificate_id})
    return outcome


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle_record,
                                    processor=processor, context=context)
