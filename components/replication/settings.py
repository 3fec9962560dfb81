"""The `replication` section of the stack config: delivery, retries, and the IoT quotas the
backfill tool paces itself by. Every field is optional; no section at all means the defaults.

    iot-multi-region:replication:
      batchSize: 5                   # stream records per state machine execution
      maximumRetryAttempts: 5        # pipe retries of a failed record before the DLQ
      maximumRecordAgeSeconds: 86400 # older records go to the DLQ (24 h = stream retention)
      parallelizationFactor: 1       # concurrent batches per stream shard
      deadLetterRetentionDays: 14    # SQS maximum
      retryIntervalSeconds: 1        # in-machine retry of throttled/unavailable IoT calls
      retryMaxAttempts: 4
      retryBackoffRate: 2.0
      backfillUtilization: 0.95      # share of each IoT API quota the backfill may use
      logExecutionData: true         # Express history exists only in the logs (cost: README)
      iotApiQuotas:                  # requests/second per API per account and region
        RegisterCertificate: 10      # only the APIs you changed in Service Quotas

The quota defaults are AWS's published defaults (AWS General Reference, "AWS IoT Core
endpoints and quotas", API throttling limits; see components/replication/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from components.context import ReportProblem

# Requests per second per account and region, AWS defaults. Sources (README.md, "Quotas"):
# AttachPolicy, AttachThingPrincipal, CreateThing, DescribeCertificate, DescribeThing and
# RegisterCertificateWithoutCA as listed in 2025 (thingpress doc/aws-api-limits.md, checked
# against the General Reference); the others from the AWS IoT developer guide's throttling
# table (awsdocs/aws-iot-docs, doc_source/limits-iot.md). Adjustable in Service Quotas.
DEFAULT_IOT_API_QUOTAS: Mapping[str, float] = MappingProxyType({
    "AttachPolicy": 15,
    "AttachThingPrincipal": 100,
    "CreateThing": 100,
    "DeleteCertificate": 10,
    "DeleteThing": 15,
    "DescribeCertificate": 10,
    "DescribeThing": 350,
    "DetachPolicy": 15,
    "DetachThingPrincipal": 15,
    "ListCertificates": 10,
    "ListTargetsForPolicy": 10,
    "ListThingPrincipals": 10,
    "ListThings": 10,
    "RegisterCertificate": 10,
    "RegisterCertificateWithoutCA": 10,
    "UpdateCertificate": 10,
})

# EventBridge Pipes limits for a DynamoDB stream source (PipeSourceDynamoDBStreamParameters).
_MAX_BATCH_SIZE = 10_000
_MAX_RETRY_ATTEMPTS = 10_000
_MAX_RECORD_AGE_SECONDS = 604_800
# Step Functions Express executions stop after 5 minutes; an in-machine retry schedule that
# could outlast that for a single call is a mistake.
_EXPRESS_LIMIT_SECONDS = 300


@dataclass(frozen=True)
class ReplicationSettings:
    batch_size: int = 5
    maximum_retry_attempts: int = 5
    maximum_record_age_seconds: int = 86_400
    parallelization_factor: int = 1
    dead_letter_retention_days: int = 14
    retry_interval_seconds: int = 1
    retry_max_attempts: int = 4
    retry_backoff_rate: float = 2.0
    backfill_utilization: float = 0.95
    log_execution_data: bool = True
    iot_api_quotas: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_IOT_API_QUOTAS))

    @property
    def dead_letter_retention_seconds(self) -> int:
        return self.dead_letter_retention_days * 24 * 3600

    def worst_retry_wait_seconds(self) -> float:
        """The longest one call can spend waiting between its in-machine retries."""
        return sum(self.retry_interval_seconds * self.retry_backoff_rate ** n
                   for n in range(self.retry_max_attempts))


# config key -> (attribute, kind, minimum, maximum)
_FIELDS: Mapping[str, tuple[str, type, float, float]] = {
    "batchSize": ("batch_size", int, 1, _MAX_BATCH_SIZE),
    "maximumRetryAttempts": ("maximum_retry_attempts", int, 0, _MAX_RETRY_ATTEMPTS),
    "maximumRecordAgeSeconds": ("maximum_record_age_seconds", int, 60, _MAX_RECORD_AGE_SECONDS),
    "parallelizationFactor": ("parallelization_factor", int, 1, 10),
    "deadLetterRetentionDays": ("dead_letter_retention_days", int, 1, 14),
    "retryIntervalSeconds": ("retry_interval_seconds", int, 1, 60),
    "retryMaxAttempts": ("retry_max_attempts", int, 0, 10),
    "retryBackoffRate": ("retry_backoff_rate", float, 1.0, 10.0),
    "backfillUtilization": ("backfill_utilization", float, 0.1, 1.0),
}
QUOTAS_KEY = "iotApiQuotas"
LOG_DATA_KEY = "logExecutionData"


def parse_settings(raw: Any, report: ReportProblem) -> ReplicationSettings:
    """`raw` is the section (None when absent); every problem is reported, none raised."""
    if raw is None:
        return ReplicationSettings()
    if not isinstance(raw, Mapping):
        report("", f"must be an object of settings, got {raw!r}; e.g. "
                   "`pulumi config set --path 'replication.batchSize' 5`")
        return ReplicationSettings()
    values: dict[str, Any] = {}
    for key in sorted(set(raw) - set(_FIELDS) - {QUOTAS_KEY, LOG_DATA_KEY}):
        report(key, f"is not a replication setting; use one of "
                    f"{', '.join(sorted([*_FIELDS, QUOTAS_KEY, LOG_DATA_KEY]))}")
    if LOG_DATA_KEY in raw:
        if isinstance(raw[LOG_DATA_KEY], bool):
            values["log_execution_data"] = raw[LOG_DATA_KEY]
        else:
            report(LOG_DATA_KEY, f"must be true or false, got {raw[LOG_DATA_KEY]!r}")
    for key, (attribute, kind, low, high) in _FIELDS.items():
        if key not in raw:
            continue
        value = raw[key]
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number_ok or (kind is int and not float(value).is_integer()):
            report(key, f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        elif not low <= value <= high:
            report(key, f"must be between {low:g} and {high:g}, got {value!r}")
        else:
            values[attribute] = kind(value)
    quotas = dict(DEFAULT_IOT_API_QUOTAS)
    given = raw.get(QUOTAS_KEY)
    if given is not None:
        if not isinstance(given, Mapping):
            report(QUOTAS_KEY, f"must map AWS IoT API names to requests per second, got {given!r}")
        else:
            for api, rate in sorted(given.items()):
                if api not in DEFAULT_IOT_API_QUOTAS:
                    report(f"{QUOTAS_KEY}.{api}", "is not an API the replication uses; use one "
                           f"of {', '.join(sorted(DEFAULT_IOT_API_QUOTAS))}")
                elif isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
                    report(f"{QUOTAS_KEY}.{api}", f"must be a positive number of requests per "
                           f"second (the applied value in Service Quotas), got {rate!r}")
                else:
                    quotas[api] = float(rate)
    settings = ReplicationSettings(**values, iot_api_quotas=quotas)
    if settings.worst_retry_wait_seconds() >= _EXPRESS_LIMIT_SECONDS:
        report("retryMaxAttempts", f"retries of one call could wait "
               f"{settings.worst_retry_wait_seconds():.0f} s, longer than an Express execution "
               f"may run ({_EXPRESS_LIMIT_SECONDS} s); lower retryMaxAttempts or "
               "retryBackoffRate")
    return settings
