"""Declared types with nothing to run locally, and why (listed in the report)."""

from __future__ import annotations

from tools.local.materialise import not_materialised

for _type, _reason in {
    "aws:acm/certificate:Certificate": "no TLS endpoint locally",
    "aws:acm/certificateValidation:CertificateValidation": "no TLS endpoint locally",
    "aws:route53/record:Record": "no DNS locally: the run addresses each region directly",
    "aws:route53/healthCheck:HealthCheck": "no DNS locally",
    "aws:route53/zone:Zone": "no DNS locally",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "no metrics locally",
    "aws:lambda/function:Function": "run in-process by the Lambda emulation (moto needs Docker)",
    "aws:lambda/layerVersion:LayerVersion": "the in-process Lambda imports the project's own venv",
    "aws:lambda/permission:Permission":
        "held by the Lambda emulation, which checks it when a service invokes a function",
    "aws:lambda/eventSourceMapping:EventSourceMapping":
        "run by the event-source emulation (stream poller, declared filter and function)",
    "aws:iot/provisioningTemplate:ProvisioningTemplate":
        "moto has no provisioning templates: the fleet emulation applies the declared one",
}.items():
    not_materialised(_type, _reason)
