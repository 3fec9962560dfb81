"""Device-state backfill: compare the device-data records (shadows, device organisation) with
one region's Device Shadow service and registry; with `apply`, make the region hold them.

Used by `python -m tools.reconcile` for every region that runs `shadow_replication` (a new
region's backfill, a restored region's catch-up). The repair is the replication function's
own `converge` (lambdas/shadow_replication): the same calls, the same replica client token
(no echo) and the same one-UpdateThing rule; only the pacing is added here.

* A record written by *another* region that this region does not hold is repaired.
* A record written by *this* region that differs is reported, never "repaired": the
  region's own newer change is in flight (or its capture was lost); converging would
  revert it.
* A record of a thing this region does not have yet waits (the registry backfill creates
  the thing; its `created` event pulls the organisation).

Pacing: one token bucket per API (tools/replication_reconcile.QuotaLimiter), at the stack's
`replication.backfillUtilization` of the quotas below, halving on throttling.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from botocore.exceptions import ClientError

from lambdas.contracts.organisation import OrganisationRecord, is_organisation_image
from lambdas.contracts.shadows import KEY_PREFIX, RecordProblem, ShadowRecord, Status
from lambdas.shadow_replication import logic as shadow_logic
from lambdas.shadow_replication import organisation as org_logic
from lambdas.shadow_replication.data import IotRegistry, IotShadows
from tools.replication_reconcile import Progress, QuotaLimiter

# Requests per second per account and region this backfill assumes when the stack's
# `replication.iotApiQuotas` does not name the API. Deliberately below AWS's defaults (AWS
# General Reference, "AWS IoT Core endpoints and quotas":
# https://docs.aws.amazon.com/general/latest/gr/iot-core.html, Device Shadow and registry
# API throttling): a backfill shares them with the live fleet. Raise them in the stack
# config after checking Service Quotas.
STATE_API_QUOTAS: Mapping[str, float] = {
    "GetThingShadow": 100, "UpdateThingShadow": 100, "DeleteThingShadow": 100,
    "DescribeThing": 350, "ListThingGroupsForThing": 10, "UpdateThing": 10,
    "AddThingToThingGroup": 10, "RemoveThingFromThingGroup": 10,
}
THROTTLING = frozenset({"ThrottlingException", "TooManyRequestsException",
                        "RequestLimitExceeded"})
MAX_THROTTLED_RETRIES = 8

IN_SYNC, REPAIRED, DIFFERS, OWN_DIFFERS, WAITING, MALFORMED, FAILED = (
    "in-sync", "repaired", "differs", "own-record-differs", "waiting-for-thing", "malformed",
    "failed")


def state_quotas(configured: Mapping[str, float]) -> dict[str, float]:
    return {**STATE_API_QUOTAS, **{k: v for k, v in configured.items() if k in STATE_API_QUOTAS}}


class _Paced:
    """Each call of the wrapped client waits for its API's token; throttling slows the pace
    and retries the call."""

    def __init__(self, client: Any, limiter: QuotaLimiter, *, writes: bool) -> None:
        self._client, self._limiter, self._writes = client, limiter, writes
        self.writes: list[str] = []

    def __getattr__(self, method: str) -> Any:
        api = "".join(part.capitalize() for part in method.split("_"))
        call = getattr(self._client, method)
        write = not api.startswith(("Get", "Describe", "List"))

        def paced(**kwargs: Any) -> Any:
            if write:
                self.writes.append(api)
                if not self._writes:
                    raise _WouldWrite(api)
            for _ in range(MAX_THROTTLED_RETRIES):
                self._limiter.acquire({api: 1})
                try:
                    return call(**kwargs)
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") not in THROTTLING:
                        raise
                    self._limiter.throttled()
            return call(**kwargs)
        return paced


class _WouldWrite(Exception):
    """A dry run reached the first write: the region differs from the record."""


@dataclass
class StateReport:
    region: str
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        if len(self.examples.setdefault(kind, [])) < 5:
            self.examples[kind].append(what)

    @property
    def pending(self) -> bool:
        return bool(self.counts[DIFFERS] or self.counts[FAILED])


def scan_state_records(dynamodb: Any, table_name: str
                       ) -> Iterator[ShadowRecord | OrganisationRecord | RecordProblem]:
    """Every shadow and organisation record of this region's replica (low-level client)."""
    kwargs: dict[str, Any] = {
        "TableName": table_name, "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": KEY_PREFIX}}, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        for image in page.get("Items", []):
            try:
                yield (OrganisationRecord.from_attribute_values(image)
                       if is_organisation_image(image)
                       else ShadowRecord.from_attribute_values(image))
            except RecordProblem as problem:
                yield problem
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _label(record: ShadowRecord | OrganisationRecord) -> str:
    if isinstance(record, OrganisationRecord):
        return f"{record.thing_name} (organisation)"
    return f"{record.thing_name}/{record.shadow_name or 'classic'}"


def reconcile_state(region: str, *, dynamodb: Any, table_name: str, iot: Any, iot_data: Any,
                    limiter: QuotaLimiter, apply: bool,
                    progress_out: TextIO | None = None) -> StateReport:
    report = StateReport(region)
    records = list(scan_state_records(dynamodb, table_name))
    progress = Progress(len(records), progress_out, f"{region} device state")
    for record in records:
        if isinstance(record, RecordProblem):
            report.note(MALFORMED, str(record))
            progress.update(False)
            continue
        shadows = _Paced(iot_data, limiter, writes=apply)
        registry = _Paced(iot, limiter, writes=apply)
        own = record.writer_region == region
        try:
            if own:  # compare only: never revert this region's own change
                shadows, registry = (_Paced(iot_data, limiter, writes=False),
                                     _Paced(iot, limiter, writes=False))
            outcome = _converge(record, region, shadows, registry)
        except _WouldWrite:
            report.note(OWN_DIFFERS if own else DIFFERS, _label(record))
            progress.update(True)
            continue
        except Exception as error:  # reported, the run goes on
            report.note(FAILED, f"{_label(record)}: {type(error).__name__}: {error}")
            progress.update(False)
            continue
        if outcome == "ORG_WAITING":
            report.note(WAITING, _label(record))
        elif shadows.writes or registry.writes:
            report.note(REPAIRED, _label(record))
        else:
            report.note(IN_SYNC, _label(record))
        progress.update(True)
    return report


def _converge(record: ShadowRecord | OrganisationRecord, region: str, shadows: Any,
              registry: Any) -> str:
    if isinstance(record, OrganisationRecord):
        ports = org_logic.OrganisationPorts(region=region, table=_NoTable(),
                                            registry=IotRegistry(registry),
                                            now=lambda: 0.0)
        return org_logic.converge(record, ports)
    if record.status == Status.DELETED and shadows_missing(shadows, record):
        return "IN_SYNC"
    return shadow_logic.converge(record, shadow_logic.Ports(
        region=region, table=_NoTable(), shadows=IotShadows(shadows), now=lambda: 0.0))


def shadows_missing(shadows: Any, record: ShadowRecord) -> bool:
    return IotShadows(shadows).get(record.thing_name, record.shadow_name) is None


class _NoTable:
    """converge never touches the table."""

    def get(self, *args: Any) -> Any:
        raise AssertionError("the backfill reads records by scan only")

    def put(self, *args: Any) -> bool:
        raise AssertionError("the backfill never writes records")


def state_tables_from_outputs(outputs: Mapping[str, Any]) -> dict[str, str]:
    """region -> its device-data replica, for the regions that run shadow_replication."""
    return {region: str(values["tableNames"]["deviceData"])
            for region, values in (outputs.get("regions") or {}).items()
            if "shadow_replication" in (values.get("capabilities") or [])}


def render_state_reports(reports: list[StateReport], out: TextIO) -> None:
    for report in reports:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())) or "no records"
        print(f"{report.region}: device state (shadows, organisation): {counts}", file=out)
        for kind in (DIFFERS, OWN_DIFFERS, WAITING, MALFORMED, FAILED):
            for example in report.examples.get(kind, []):
                print(f"  {kind}: {example}", file=out)
