"""Pass/fail cases of the operations guardrails (policy/guardrails/operations.py), in the
shape of tests/policy/test_guardrails.py's tables, which include them."""

from __future__ import annotations

from typing import Any

CONFIGURATION = "aws-native:iot:AccountAuditConfiguration"
SCHEDULED = "aws-native:iot:ScheduledAudit"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:alerts"
ROLE = "arn:aws:iam::123456789012:role/audit-notify"
REQUIRED = ["REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK", "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
            "DEVICE_CERTIFICATE_SHARED_CHECK", "CA_CERTIFICATE_EXPIRING_CHECK",
            "DEVICE_CERTIFICATE_EXPIRING_CHECK", "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
            "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK", "LOGGING_DISABLED_CHECK"]


def checks(*names: str, off: tuple[str, ...] = ()) -> dict[str, Any]:
    from policy.guardrails.operations import check_property

    return {check_property(n): {"enabled": n not in off} for n in names}


def audit_configuration(**overrides: Any) -> dict[str, Any]:
    return {"accountId": "123456789012", "roleArn": ROLE,
            "auditCheckConfigurations": checks(*REQUIRED),
            "auditNotificationTargetConfigurations": {
                "sns": {"enabled": True, "targetArn": TOPIC, "roleArn": ROLE}}, **overrides}


ALARM_PROPS = {"name": "x", "comparisonOperator": "GreaterThanThreshold", "threshold": 1,
               "evaluationPeriods": 1, "alarmActions": [TOPIC]}

RESOURCE_CASES: list[tuple[str, str, dict[str, Any] | None, list[tuple[dict[str, Any], str]],
                           dict[str, Any] | None]] = [
    # The default provider is the violation; an explicit one passes (tests/policy/
    # test_operations_guardrails.py drives the engine's provider argument).
    ("aws-native-explicit-regional-provider", SCHEDULED, None,
     [({"frequency": "DAILY", "targetCheckNames": ["LOGGING_DISABLED_CHECK"]}, "default aws-native provider")],
     None),
    ("aws-native-explicit-regional-provider", ALARM, ALARM_PROPS, [], None),
    ("iot-audit-findings-notified", CONFIGURATION, audit_configuration(),
     [(audit_configuration(auditNotificationTargetConfigurations={}), "not sent anywhere"),
      (audit_configuration(auditNotificationTargetConfigurations={"sns": {"enabled": False, "targetArn": TOPIC}}),
       "not sent anywhere"),
      (audit_configuration(auditNotificationTargetConfigurations={"sns": {"enabled": True, "targetArn": TOPIC}}),
       "both targetArn and roleArn")], None),
    ("iot-audit-required-checks", CONFIGURATION, audit_configuration(),
     [(audit_configuration(auditCheckConfigurations=checks(*REQUIRED, off=("LOGGING_DISABLED_CHECK",))),
       "LOGGING_DISABLED_CHECK"),
      (audit_configuration(auditCheckConfigurations=checks(*REQUIRED[1:])),
       "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK")], None),
    ("cloudwatch-alarm-has-actions", ALARM, ALARM_PROPS,
     [({**ALARM_PROPS, "alarmActions": []}, "no alarmActions"),
      ({**ALARM_PROPS, "actionsEnabled": False}, "actionsEnabled is false")], None),
    ("aws-native-required-tags", SCHEDULED,
     {"frequency": "DAILY", "tags": [{"key": "owner", "value": "t"}, {"key": "environment", "value": "dev"}]},
     [({"frequency": "DAILY", "tags": [{"key": "owner", "value": "t"}]}, "environment"),
      ({"frequency": "DAILY", "tags": []}, "owner, environment")],
     {"requiredTags": ["owner", "environment"]}),
]

STACK_CASES: list[tuple[str, list[Any], list[tuple[list[Any], str]], dict[str, Any] | None]] = [
    ("iot-scheduled-audit-checks-enabled",
     [(CONFIGURATION, audit_configuration()),
      (SCHEDULED, {"frequency": "DAILY", "targetCheckNames": REQUIRED})],
     [([(CONFIGURATION, audit_configuration(auditCheckConfigurations=checks(*REQUIRED[1:]))),
        (SCHEDULED, {"frequency": "DAILY", "targetCheckNames": REQUIRED})],
       "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK")], None),
]
