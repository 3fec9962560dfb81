"""AWS IoT Device Defender audit of one region (pulumi-aws-native: Cloud Control types that
pulumi-aws lacks), through the region's own aws-native provider.

Per region: the audit role (reads only what this design's checks need), the notification
role (publishes findings to the region's alert topic), the account's audit configuration as
far as `iotAccountSettings.auditConfiguration` says this stack owns it, a daily scheduled
audit of this design's checks, and the opt-in mitigation actions with one role each.
Design notes: components/audit/README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_aws_native as aws_native

from components.account import AwsAccount
from components.audit.checks import (
    CHECKS,
    MITIGATIONS_BY_SETTING,
    Mitigation,
    audit_role_statements,
    enabled_checks,
)
from components.audit.settings import AuditSettings
from components.edge.settings import Ownership
from components.iam import policy_document, service_trust_policy

# Device Defender runs a DAILY audit at a time AWS picks (a daily audit takes no day).
FREQUENCY = "DAILY"
# Short role-name suffixes (IAM role names: 64 characters, and the prefix may reach 45).
MITIGATION_ROLE_SUFFIX = {"deactivateRevokedDeviceCertificates": "audit-fix-cert",
                          "deactivateRevokedCaCertificates": "audit-fix-ca"}


@dataclass(frozen=True)
class DeviceDefenderAuditArgs:
    region: str
    name_prefix: str  # `<app>-<env>-<region>` (IAM names are global)
    account: AwsAccount
    native_provider: pulumi.ProviderResource  # pinned to `region`
    alert_topic_arn: pulumi.Input[str]
    alert_key_arn: pulumi.Input[str]  # the topic's CMK
    ownership: Ownership  # iotAccountSettings.auditConfiguration
    settings: AuditSettings = field(default_factory=AuditSettings)
    tags: Mapping[str, str] = field(default_factory=dict)


def iot_trust(partition: str, region: str, account_id: str) -> str:
    """AWS IoT (Device Defender), acting for this account in this region only."""
    return service_trust_policy("iot.amazonaws.com", account_id,
                                f"arn:{partition}:iot:{region}:{account_id}:*")


def notification_role_policy(*, topic_arn: str, key_arn: str, region: str) -> str:
    return policy_document([
        {"Sid": "PublishFindings", "Effect": "Allow", "Action": "sns:Publish",
         "Resource": topic_arn},
        {"Sid": "EncryptFindings", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}}},
    ])


def mitigation_policy(values: list[str], *, mitigation: Mitigation, region: str) -> str:
    """The one action the mitigation takes, on this account's and region's resources."""
    partition, account_id = values
    return policy_document([{
        "Sid": "Mitigate", "Effect": "Allow", "Action": mitigation.iam_action,
        "Resource": f"arn:{partition}:iot:{region}:{account_id}:{mitigation.resource}"}])


def check_configurations(settings: AuditSettings) -> dict[str, Any]:
    """Every check AWS knows, stated on or off (the Cloud Control resource disables a check
    it is not told about), with our thresholds."""
    on = set(enabled_checks(certificate_age=settings.device_certificate_age_days is not None))
    native = aws_native.iot
    arguments: dict[str, Any] = {}
    for check in CHECKS:
        enabled = check.name in on
        if check.name == "DEVICE_CERTIFICATE_EXPIRING_CHECK":
            arguments[check.field] = native.AccountAuditConfigurationDeviceCertExpirationAuditCheckConfigurationArgs(
                enabled=enabled,
                configuration=native.AccountAuditConfigurationCertExpirationCheckCustomConfigurationArgs(
                    cert_expiration_threshold_in_days=str(settings.device_certificate_expiring_days)))
        elif check.name == "DEVICE_CERTIFICATE_AGE_CHECK":
            arguments[check.field] = native.AccountAuditConfigurationDeviceCertAgeAuditCheckConfigurationArgs(
                enabled=enabled,
                configuration=native.AccountAuditConfigurationCertAgeCheckCustomConfigurationArgs(
                    cert_age_threshold_in_days=str(settings.device_certificate_age_days))
                if enabled else None)
        else:
            arguments[check.field] = native.AccountAuditConfigurationAuditCheckConfigurationArgs(
                enabled=enabled)
    return arguments


def native_tags(tags: Mapping[str, str]) -> list[aws_native.TagArgs]:
    """Cloud Control tags are a list of key/value pairs."""
    return [aws_native.TagArgs(key=k, value=v) for k, v in sorted(tags.items())]


class DeviceDefenderAudit(pulumi.ComponentResource):
    def __init__(self, name: str, args: DeviceDefenderAuditArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:audit:DeviceDefenderAudit", name, None, opts)
        region, prefix, settings = args.region, args.name_prefix, args.settings
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        native = pulumi.ResourceOptions(parent=self, provider=args.native_provider)
        account_id, partition = args.account.account_id, args.account.partition
        checks = enabled_checks(certificate_age=settings.device_certificate_age_days is not None)
        trust = pulumi.Output.all(partition, account_id).apply(
            lambda v: iot_trust(v[0], region, v[1]))

        # --- roles ---------------------------------------------------------------------------
        self.audit_role = aws.iam.Role(
            f"{name}-audit-role", name=f"{prefix}-audit",
            description=f"Device Defender audits AWS IoT in {region} (read only)",
            assume_role_policy=trust, tags=tags, opts=child)
        audit_policy = aws.iam.RolePolicy(
            f"{name}-audit-policy", role=self.audit_role.id, name="audit-reads",
            policy=pulumi.Output.all(partition, account_id).apply(
                lambda v: policy_document(audit_role_statements(
                    partition=v[0], region=region, account_id=v[1], checks=checks))),
            opts=child)
        self.notification_role = aws.iam.Role(
            f"{name}-notify-role", name=f"{prefix}-audit-notify",
            description=f"Device Defender in {region} publishes audit findings to the alert topic",
            assume_role_policy=trust, tags=tags, opts=child)
        notify_policy = aws.iam.RolePolicy(
            f"{name}-notify-policy", role=self.notification_role.id, name="publish-findings",
            policy=pulumi.Output.all(args.alert_topic_arn, args.alert_key_arn).apply(
                lambda v: notification_role_policy(topic_arn=v[0], key_arn=v[1],
                                                   region=region)),
            opts=child)

        # --- the account's audit configuration (a singleton of account and region) ------
        self.configuration: aws_native.iot.AccountAuditConfiguration | None = None
        if args.ownership in ("manage", "adopt"):
            turned_off = sorted(c.name for c in CHECKS if c.name not in checks)
            if args.ownership == "manage" and turned_off:
                pulumi.log.warn(
                    f"{region}: iotAccountSettings.auditConfiguration is 'manage': Device "
                    f"Defender audit checks {', '.join(turned_off)} are switched off for the "
                    "whole account in this region; use 'adopt' if anything else uses them",
                    resource=self)
            options: dict[str, Any] = {
                "retain_on_delete": args.ownership == "adopt" or not settings.reset_on_delete,
                "depends_on": [audit_policy, notify_policy]}
            if args.ownership == "adopt":
                # Imported as it is: its checks, role and targets are not ours to change
                # (switch to `manage` afterwards to apply ours). Cloud Control's identifier
                # is the account id, which an import needs as a plain value.
                options["import_"] = aws.get_caller_identity().account_id
                options["ignore_changes"] = ["auditCheckConfigurations",
                                             "auditNotificationTargetConfigurations", "roleArn"]
            self.configuration = aws_native.iot.AccountAuditConfiguration(
                f"{name}-configuration", account_id=account_id,
                role_arn=self.audit_role.arn,
                audit_check_configurations=aws_native.iot.AccountAuditConfigurationAuditCheckConfigurationsArgs(
                    **check_configurations(settings)),
                audit_notification_target_configurations=aws_native.iot.AccountAuditConfigurationAuditNotificationTargetConfigurationsArgs(
                    sns=aws_native.iot.AccountAuditConfigurationAuditNotificationTargetArgs(
                        enabled=True, role_arn=self.notification_role.arn,
                        target_arn=args.alert_topic_arn)),
                opts=pulumi.ResourceOptions.merge(native, pulumi.ResourceOptions(**options)))

        # --- the daily audit of this design's checks ----------------------------------------
        self.scheduled_audit = aws_native.iot.ScheduledAudit(
            f"{name}-daily", scheduled_audit_name=f"{prefix}-daily",
            frequency=aws_native.iot.ScheduledAuditFrequency(FREQUENCY),
            target_check_names=list(checks), tags=native_tags(tags),
            opts=pulumi.ResourceOptions.merge(native, pulumi.ResourceOptions(
                depends_on=[self.configuration] if self.configuration else [])))

        # --- opt-in mitigation actions ----------------------------------------------------------
        self.mitigation_actions: dict[str, aws_native.iot.MitigationAction] = {}
        for setting in settings.mitigations:
            mitigation = MITIGATIONS_BY_SETTING[setting]
            role = aws.iam.Role(
                f"{name}-{setting}-role", name=f"{prefix}-{MITIGATION_ROLE_SUFFIX[setting]}",
                description=f"Device Defender mitigation {setting} in {region}",
                assume_role_policy=trust, tags=tags, opts=child)
            role_policy = aws.iam.RolePolicy(
                f"{name}-{setting}-policy", role=role.id, name=setting,
                policy=pulumi.Output.all(partition, account_id).apply(
                    partial(mitigation_policy, mitigation=mitigation, region=region)),
                opts=child)
            params: dict[str, Any] = {}
            if mitigation.action_type == "update_device_certificate_params":
                params[mitigation.action_type] = aws_native.iot.MitigationActionUpdateDeviceCertificateParamsArgs(
                    action=aws_native.iot.MitigationActionUpdateDeviceCertificateParamsAction.DEACTIVATE)
            else:
                params[mitigation.action_type] = aws_native.iot.MitigationActionUpdateCaCertificateParamsArgs(
                    action=aws_native.iot.MitigationActionUpdateCaCertificateParamsAction.DEACTIVATE)
            self.mitigation_actions[setting] = aws_native.iot.MitigationAction(
                f"{name}-{setting}", action_name=f"{prefix}-{setting}", role_arn=role.arn,
                action_params=aws_native.iot.MitigationActionActionParamsArgs(**params),
                tags=native_tags(tags),
                opts=pulumi.ResourceOptions.merge(native, pulumi.ResourceOptions(
                    depends_on=[role_policy])))

        self.register_outputs({
            "audit_role_arn": self.audit_role.arn,
            "scheduled_audit_name": self.scheduled_audit.scheduled_audit_name,
            "checks": list(checks),
            "mitigation_actions": sorted(self.mitigation_actions),
        })
