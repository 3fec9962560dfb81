"""Lambda entry point (API Gateway REST proxy events). HTTP in, HTTP out; the flows live in
`logic/`, AWS access in `dal/`.

Routes: `POST /registration` (the seed's device contract) and `POST /rotation` (a registered
device proves its current key and gets a certificate for a new one).

Answers: 200 seed-shaped success; 400 naming the field; 403 one body for every identity
refusal; 409 registered / in progress; 503 when AWS failed (everything undone, retry); 500
only for a bug, with a generic body. Never a stack trace in a response; the request body is
never logged (it holds the token), nor are keys or salts.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.contracts.metrics import CVM, Cvm

from .config import Config
from .dal.aws import BOTO_CONFIG, DynamoDeviceTables, IotRegistry, SecretSalts
from .logic.errors import Refusal
from .logic.registration import Registrar
from .logic.rotation import Rotator
from .models.requests import MalformedRequest, RegistrationRequest, RotationRequest, parse_body
from .models.responses import error_body, success_body

logger = Logger(service=CVM.name)
tracer = Tracer(service=CVM.name)
metrics = Metrics(namespace=CVM.namespace, service=CVM.name)
app = APIGatewayRestResolver()

NO_STORE = {"Cache-Control": "no-store"}  # bodies carry certificates (and legacy keys)


@dataclass(frozen=True)
class Flows:
    config: Config
    registrar: Registrar
    rotator: Rotator


_invocation: dict[str, LambdaContext] = {}


def _time_left() -> float:
    """Seconds the current invocation has left (undo retries stop in time to answer)."""
    context = _invocation.get("context")
    return context.get_remaining_time_in_millis() / 1000 if context is not None \
        else float("inf")


def _undo_failed(step: str, error: Exception) -> None:
    # What failed and how; the error text of our own exceptions carries no secrets.
    logger.error("undo step failed; resources may need cleanup",
                 extra={"step": step, "error": type(error).__name__, "detail": str(error)[:200]})
    metrics.add_metric(name=Cvm.UNDO_FAILED, unit=MetricUnit.Count, value=1)


def build_flows(config: Config, session: boto3.session.Session) -> Flows:
    dynamodb = session.client("dynamodb", region_name=config.region, config=BOTO_CONFIG)
    registry = IotRegistry(session.client("iot", region_name=config.region, config=BOTO_CONFIG),
                           time_left=_time_left)
    tables = DynamoDeviceTables(dynamodb, provisioning_table=config.provisioning_table,
                                inventory_table=config.inventory_table)
    salts = SecretSalts(session.client("secretsmanager", region_name=config.region,
                                       config=BOTO_CONFIG), config.salts_secret_id)
    return Flows(config,
                 Registrar(config, salts, tables, registry, on_undo_failure=_undo_failed),
                 Rotator(config, tables, registry, on_undo_failure=_undo_failed))


@functools.lru_cache(maxsize=1)
def flows() -> Flows:
    """Built once per container: warm invocations reuse the clients and the cached salts."""
    return build_flows(Config.from_environment(), boto3.session.Session())


def _json(status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
          ) -> Response:
    return Response(status_code=status_code, content_type="application/json",
                    body=json.dumps(body, separators=(",", ":")),
                    headers={**NO_STORE, **(headers or {})})


def _body() -> str | None:
    event = app.current_event
    body = event.body
    if body is None or not event.is_base64_encoded:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise MalformedRequest("body", "is not valid base64-encoded UTF-8") from None


def _outcome(route: str, status_code: int) -> None:
    metrics.add_metric(name=Cvm.outcome(route, status_code), unit=MetricUnit.Count, value=1)


def _route() -> str:
    return Cvm.ROTATION if app.current_event.path.rstrip("/").endswith("/rotation") \
        else Cvm.REGISTRATION


@app.post("/registration")
def register() -> Response:
    metrics.add_metric(name=Cvm.REQUESTS, unit=MetricUnit.Count, value=1)
    request = parse_body(_body(), RegistrationRequest)
    current = flows()
    registered = current.registrar.register(request)
    _outcome(Cvm.REGISTRATION, 200)
    if not registered.redelivered:  # a re-delivery is no new attempt
        metrics.add_metric(name=Cvm.ATTEMPTS_PER_DEVICE, unit=MetricUnit.Count,
                           value=registered.attempts)
    logger.info("device registered" if not registered.redelivered
                else "certificate delivered again to the key it was issued to", extra={
        "thingName": registered.issued.thing_name,
        "certificateId": registered.issued.certificate_id,
        "batch": registered.batch, "path": registered.path, "attempts": registered.attempts})
    return _json(200, success_body(registered.issued, endpoint=current.config.device_endpoint,
                                   root_ca=current.config.root_ca_bundle))


@app.post("/rotation")
def rotate() -> Response:
    metrics.add_metric(name=Cvm.ROTATION_REQUESTS, unit=MetricUnit.Count, value=1)
    request = parse_body(_body(), RotationRequest)
    current = flows()
    rotated = current.rotator.rotate(request)
    _outcome(Cvm.ROTATION, 200)
    logger.info("certificate rotated" if not rotated.redelivered
                else "rotation answered again (identical retry)", extra={
        "thingName": rotated.issued.thing_name, "certificateId": rotated.issued.certificate_id,
        "revokedCertificateId": rotated.revoked_certificate_id})
    return _json(200, success_body(rotated.issued, endpoint=current.config.device_endpoint,
                                   root_ca=current.config.root_ca_bundle))


@app.exception_handler(MalformedRequest)
def malformed(error: MalformedRequest) -> Response:
    _outcome(_route(), 400)
    logger.info("request refused", extra={"status": 400, "field": error.field})
    return _json(400, error_body(400, f"{error.field} {error.message}", error.field))


@app.exception_handler(Refusal)
def refused(error: Refusal) -> Response:
    _outcome(_route(), error.status_code)
    logger.info("request refused", extra={"status": error.status_code, "field": error.field,
                                          "reason": type(error).__name__})
    retry = None if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    message = error.message if error.field is None else f"{error.field} {error.message}"
    return _json(error.status_code, error_body(error.status_code, message, error.field), retry)


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    # A bug: logged with its trace for us, a generic body for the device.
    _outcome(_route(), 500)
    logger.exception("unexpected error")
    return _json(500, error_body(500, "internal error"))


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _invocation["context"] = context
    return app.resolve(event, context)
