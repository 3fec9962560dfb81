"""Lambda entry point of the shadow replication (one function per region, two triggers):

* the capture rules (components/shadow_replication) invoke it asynchronously with one
  shadow change of this region;
* an event source mapping on this region's device-data replica stream hands it the shadow
  records other regions wrote (filtered), answered with partial batch failures.

A malformed message or record goes to the dead-letter queue with its content and is not
retried (it cannot get better); a conflict or an unavailable service raises and is retried
(async invocation: twice, then the DLQ; stream: the mapping's retries, then the DLQ).

Layers: this handler -> `logic` (decisions, no AWS) -> `data` (AWS); configuration `config`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.contracts.metrics import SHADOW_REPLICATION, ShadowReplication
from lambdas.contracts.organisation import is_applied_image, is_organisation_image
from lambdas.contracts.shadows import RecordProblem

from . import organisation
from .config import Config
from .data import (
    DeadLetters,
    DynamoAppliedLog,
    DynamoOrganisationTable,
    DynamoShadowTable,
    IotRegistry,
    IotShadows,
)
from .logic import Ports, apply, capture

logger = Logger(service=SHADOW_REPLICATION.name)
tracer = Tracer(service=SHADOW_REPLICATION.name)
metrics = Metrics(namespace=SHADOW_REPLICATION.namespace, service=SHADOW_REPLICATION.name)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams,
                           raise_on_entire_batch_failure=False)


@dataclass(frozen=True)
class Runtime:
    ports: Ports
    organisation: organisation.OrganisationPorts
    dead_letters: DeadLetters


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """Configuration and AWS clients, built once per execution environment."""
    global _runtime
    if _runtime is None:
        config = Config.from_environment()
        table = boto3.resource("dynamodb").Table(config.device_data_table)
        # The SDK's default iot-data endpoint is the region's data-plane endpoint,
        # data-ats.iot.<region>.amazonaws.com (AWS General Reference, "AWS IoT Core - data
        # plane endpoints"), which serves the Device Shadow REST API.
        shadows = boto3.client("iot-data")
        _runtime = Runtime(
            Ports(region=config.region, table=DynamoShadowTable(table),
                  shadows=IotShadows(shadows), now=time.time),
            organisation.OrganisationPorts(
                region=config.region, table=DynamoOrganisationTable(table),
                registry=IotRegistry(boto3.client("iot")), now=time.time,
                applied=DynamoAppliedLog(table, config.region)),
            DeadLetters(boto3.client("sqs"), config.dead_letter_queue_url))
    return _runtime


def _count(outcome: str) -> None:
    metrics.add_metric(name=ShadowReplication.outcome(outcome), unit=MetricUnit.Count, value=1)


def handle_record(record: DynamoDBRecord) -> str:
    rt = runtime()
    images = record.raw_event.get("dynamodb", {})
    try:
        if is_applied_image(images.get("NewImage")) or is_applied_image(images.get("Keys")):
            outcome = "ORG_APPLIED_LOG"  # another region's bookkeeping: nothing to apply
        elif is_organisation_image(images.get("NewImage")):
            outcome = organisation.apply(images.get("NewImage"), images.get("OldImage"),
                                         rt.organisation)
        else:
            outcome = apply(images.get("NewImage"), images.get("OldImage"), rt.ports)
    except RecordProblem as problem:
        rt.dead_letters.send(f"malformed device-state record: {problem}", record.raw_event)
        outcome = "MALFORMED"
        logger.warning("malformed shadow record dead-lettered",
                       extra={"eventID": record.event_id, "problem": str(problem)})
    except Exception as error:  # retried by the mapping from this record, then its DLQ
        logger.warning("shadow record failed; retried",
                       extra={"eventID": record.event_id,
                              "error": f"{type(error).__name__}: {error}"})
        raise
    _count(outcome)
    return outcome


def handle_capture(event: dict[str, Any]) -> dict[str, str]:
    rt = runtime()
    registry = organisation.is_registry_event(event)
    try:
        outcome = organisation.capture(event, rt.organisation) if registry \
            else capture(event, rt.ports)
    except RecordProblem as problem:
        rt.dead_letters.send(f"malformed {'registry event' if registry else 'shadow message'}: "
                             f"{problem}", event)
        outcome = "MALFORMED"
        logger.warning("malformed device-state message dead-lettered",
                       extra={"problem": str(problem)})
    _count(outcome)
    logger.info("organisation change captured" if registry else "shadow change captured", extra={"outcome": outcome,
                                                 "thingName": event.get("thingName")})
    return {"outcome": outcome}


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        return process_partial_response(event=event, record_handler=handle_record,
                                        processor=processor, context=context)
    return handle_capture(event)
