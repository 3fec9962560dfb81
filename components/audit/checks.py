"""The Device Defender audit checks, which of them fit this design, and what the audit role
needs to read for them. Plain data (no Pulumi).

Checks and their meaning: "Audit checks",
https://docs.aws.amazon.com/iot-device-defender/latest/devguide/device-defender-audit-checks.html
The role's actions are AWS's managed policy `AWSIoTDeviceDefenderAudit`
(https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSIoTDeviceDefenderAudit.html)
minus what only the checks we leave off need (role aliases: we issue none), each scoped to
this account and region where the Service Authorization Reference allows a resource
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsiot.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditCheck:
    name: str  # the API's check name
    field: str  # the pulumi-aws-native AuditCheckConfigurations argument
    enabled: bool  # part of this design's audit
    why: str


CHECKS: tuple[AuditCheck, ...] = (
    AuditCheck("AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
               "authenticated_cognito_role_overly_permissive_check", True,
               "installers get credentials from a Cognito identity pool (fleet provisioning)"),
    AuditCheck("UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
               "unauthenticated_cognito_role_overly_permissive_check", True,
               "we allow no unauthenticated identities; the check proves it stays so"),
    AuditCheck("CA_CERTIFICATE_EXPIRING_CHECK", "ca_certificate_expiring_check", True,
               "our intermediate CA expires: the trigger for a CA rotation"),
    AuditCheck("CA_CERTIFICATE_KEY_QUALITY_CHECK", "ca_certificate_key_quality_check", True,
               "our CA's key size and format"),
    AuditCheck("REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
               "revoked_ca_certificate_still_active_check", True,
               "a CA revoked by its issuer must not stay ACTIVE (auto-registration)"),
    AuditCheck("INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
               "intermediate_ca_revoked_for_active_device_certificates_check", True,
               "device certificates chain to our intermediate CA"),
    AuditCheck("DEVICE_CERTIFICATE_EXPIRING_CHECK", "device_certificate_expiring_check", True,
               "devices must be re-issued before their certificate expires"),
    AuditCheck("DEVICE_CERTIFICATE_KEY_QUALITY_CHECK", "device_certificate_key_quality_check",
               True, "weak device keys"),
    AuditCheck("DEVICE_CERTIFICATE_SHARED_CHECK", "device_certificate_shared_check", True,
               "one certificate per device: a shared one is a cloned device"),
    AuditCheck("REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
               "revoked_device_certificate_still_active_check", True,
               "a device certificate revoked by its CA must not stay ACTIVE"),
    AuditCheck("CONFLICTING_CLIENT_IDS_CHECK", "conflicting_client_ids_check", True,
               "the device policy binds the client id to the thing name; conflicts mean clones"),
    AuditCheck("IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "iot_policy_overly_permissive_check", True,
               "the device and claim policies are least privilege; the check keeps them so"),
    AuditCheck("IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK",
               "io_t_policy_potential_mis_configuration_check", True,
               "policy variables and wildcards in IoT policies"),
    AuditCheck("LOGGING_DISABLED_CHECK", "logging_disabled_check", True,
               "IoT logging must stay on (the edge sets it when it owns loggingOptions)"),
    AuditCheck("DEVICE_CERTIFICATE_AGE_CHECK", "device_certificate_age_check", False,
               "opt-in (audit.deviceCertificateAgeDays): a rotation policy by age"),
    AuditCheck("IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK", "iot_role_alias_overly_permissive_check",
               False, "this design issues no role aliases (no credential provider)"),
    AuditCheck("IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK",
               "iot_role_alias_allows_access_to_unused_services_check", False,
               "this design issues no role aliases (no credential provider)"),
)
BY_NAME: Mapping[str, AuditCheck] = {check.name: check for check in CHECKS}


def enabled_checks(*, certificate_age: bool) -> tuple[str, ...]:
    return tuple(c.name for c in CHECKS
                 if c.enabled or (certificate_age and c.name == "DEVICE_CERTIFICATE_AGE_CHECK"))


def audit_role_statements(*, partition: str, region: str, account_id: str,
                          checks: tuple[str, ...]) -> list[dict[str, object]]:
    """What the audit reads, as narrow as IAM allows, for the enabled checks only."""
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    statements: list[dict[str, object]] = [
        # List and logging-options reads have no resource type: "*" is all IAM accepts.
        {"Sid": "ListAndLoggingReads", "Effect": "Allow",
         "Action": sorted({"iot:ListCACertificates", "iot:ListCertificates",
                           "iot:ListPolicies", "iot:GetLoggingOptions",
                           "iot:GetV2LoggingOptions"}),
         "Resource": "*"},
        {"Sid": "DescribeCertificates", "Effect": "Allow",
         "Action": ["iot:DescribeCACertificate", "iot:DescribeCertificate",
                    "iot:GetEffectivePolicies"],
         "Resource": [f"{iot}:cacert/*", f"{iot}:cert/*"]},
        {"Sid": "ReadIotPolicies", "Effect": "Allow", "Action": ["iot:GetPolicy"],
         "Resource": f"{iot}:policy/*"},
    ]
    if any("COGNITO" in check for check in checks):
        statements += [
            {"Sid": "ReadIdentityPoolRoles", "Effect": "Allow",
             "Action": ["cognito-identity:GetIdentityPoolRoles"],
             "Resource": f"arn:{partition}:cognito-identity:{region}:{account_id}:identitypool/*"},
            {"Sid": "ReadIdentityPoolRolePolicies", "Effect": "Allow",
             "Action": ["iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
                        "iam:ListRolePolicies"],
             "Resource": f"arn:{partition}:iam::{account_id}:role/*"},
            # Customer and AWS managed policies attached to those roles. AWS's live under
            # the account "aws", which the pack's validator (parliament) refuses to parse;
            # `*` names the same set, since IAM serves no other account's policies.
            {"Sid": "ReadManagedPolicies", "Effect": "Allow",
             "Action": ["iam:GetPolicy", "iam:GetPolicyVersion"],
             "Resource": f"arn:{partition}:iam::*:policy/*"},
        ]
    return statements


@dataclass(frozen=True)
class Mitigation:
    """An opt-in mitigation action: what AWS does to a finding's resource, and the one IAM
    action its role needs (AWS's managed policy for that action, scoped)."""

    setting: str  # the name in `audit.mitigations`
    action_type: str  # ActionParams field of the pulumi-aws-native MitigationAction
    iam_action: str
    resource: str  # ARN suffix pattern under arn:<partition>:iot:<region>:<account>:
    checks: tuple[str, ...]  # the findings it is meant for
    why: str


MITIGATIONS: tuple[Mitigation, ...] = (
    Mitigation("deactivateRevokedDeviceCertificates", "update_device_certificate_params",
               "iot:UpdateCertificate", "cert/*",
               ("REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
                "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK"),
               "a certificate its CA revoked is deactivated in AWS IoT (UPDATE_DEVICE_"
               "CERTIFICATE, DEACTIVATE: managed policy AWSIoTDeviceDefenderUpdateDeviceCert"
               "MitigationAction)"),
    Mitigation("deactivateRevokedCaCertificates", "update_ca_certificate_params",
               "iot:UpdateCACertificate", "cacert/*",
               ("REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",),
               "a CA its issuer revoked is deactivated (UPDATE_CA_CERTIFICATE, DEACTIVATE: "
               "managed policy AWSIoTDeviceDefenderUpdateCACertMitigationAction)"),
)
MITIGATIONS_BY_SETTING: Mapping[str, Mitigation] = {m.setting: m for m in MITIGATIONS}
