"""One region's device edge: where devices with a certificate from our CA connect.

Per region: the server certificate for the device domain, the IoT domain configuration
(TLS 1.2+ only, X.509 MQTT only), our intermediate CA registered for auto-registration,
the device policy, and this region's latency record for the device domain, guarded by a
CloudWatch-alarm health check. The account-wide IoT settings (registry events, logging
options, the AWSIotLogsV2 log group) are declared only as far as `account_settings` says
this stack owns them. Design notes: components/edge/README.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.edge.cas import LEGACY_NAME, DeviceCa, DeviceCas, single
from components.edge.device_policy import device_policy_document
from components.edge.settings import IotAccountSettings
from components.failover import (
    CnameTarget,
    HealthLabels,
    LatencyEndpointSpec,
    ServerErrorAlarm,
    dns_validated_certificate,
    latency_endpoint,
)
from components.iam import service_trust_policy

# AWS IoT V2 logging always writes to this log group name; we create it so that it is
# encrypted with our key and has our retention, instead of IoT creating a plain one.
IOT_LOG_GROUP_NAME = "AWSIotLogsV2"
IOT_LOG_LEVEL = "WARN"

# Registry events the onboarding flows listen to (thing and certificate lifecycle), and the
# device-organisation replication (thing updates, static group membership:
# components/shadow_replication REGISTRY_EVENT_TYPES).
OUR_EVENT_TYPES = ("THING", "CERTIFICATE", "THING_GROUP_MEMBERSHIP")
# `eventConfigurations: manage`: the region's setting is ours, every other type is stated
# explicitly off (and the deployment says so). `adopt` turns on OUR_EVENT_TYPES only.
IOT_EVENT_CONFIGURATIONS: Mapping[str, bool] = {
    "THING": True,
    "CERTIFICATE": True,
    "CA_CERTIFICATE": False,
    "THING_GROUP": False,
    "THING_GROUP_MEMBERSHIP": True,
    "THING_GROUP_HIERARCHY": False,
    "THING_TYPE": False,
    "THING_TYPE_ASSOCIATION": False,
    "JOB": False,
    "JOB_EXECUTION": False,
    "POLICY": False,
}

# DNS: devices re-resolve within a minute of a region dropping out.
LATENCY_RECORD_TTL = 60

# Health: the region is unhealthy while devices fail to connect because of IoT itself
# (Connect.ServerError), at least this many a minute in 3 of the last 5 minutes
# (components/failover.py).
CONNECT_SERVER_ERRORS_PER_MINUTE = 10
# Reachability: the MQTT-over-TLS port of the region's data endpoint answers TCP.
MQTT_TLS_PORT = 8883


@dataclass(frozen=True)
class DeviceEdgeArgs:
    region: str
    app_name: str  # the device policy's topic namespace (`dt/<app>/...`)
    domain_configuration_name: str
    device_policy_name: str
    name_prefix: str  # `<app>-<env>-<region>`, for IAM, alarm and health-check names
    device_domain: str
    hosted_zone_id: str
    ca_certificate_pem: str
    tls_security_policy: str
    log_retention_days: int
    # "acm": ACM issues and DNS-validates the server certificate here; "imported": use
    # server_certificate_arn (and validation_certificate_arn for a private-CA one).
    server_certificate_mode: str
    # The region's CMK; its key policy already lets CloudWatch Logs in this region use it.
    log_key_arn: pulumi.Input[str]
    account: AwsAccount
    server_certificate_arn: str | None = None
    validation_certificate_arn: str | None = None
    # Which account-wide IoT settings this stack owns (default: none of them).
    account_settings: IotAccountSettings = field(default_factory=IotAccountSettings)
    tags: Mapping[str, str] = field(default_factory=dict)
    # Every CA of a rotation (components/edge/cas.py); None: `ca_certificate_pem` alone.
    device_cas: DeviceCas | None = None


def ca_logical_name(component: str, ca: DeviceCa) -> str:
    """The first CA keeps the name it always had; others are named after themselves."""
    return f"{component}-ca" if ca.name == LEGACY_NAME else f"{component}-ca-{ca.name}"


def event_configurations(ownership: str) -> dict[str, bool] | None:
    """What the EventConfigurations resource declares for an ownership choice (None: no
    resource). The provider sends only the declared types, so `adopt` leaves every other
    type as it is."""
    if ownership == "manage":
        return dict(IOT_EVENT_CONFIGURATIONS)
    if ownership == "adopt":
        return {event_type: True for event_type in OUR_EVENT_TYPES}
    return None


def log_group_options(ownership: str, parent: pulumi.Resource) -> pulumi.ResourceOptions | None:
    """Resource options of the AWSIotLogsV2 group for an ownership choice (None: no resource).

    Both keep the group on delete: it is the account's IoT log, which IoT keeps writing to
    after this stack stops managing it (LoggingOptions outlive their resource). `adopt`
    imports the existing group as it is: its encryption, retention and tags are not ours to
    change (switch to `manage` afterwards to apply ours)."""
    if ownership == "manage":
        return pulumi.ResourceOptions(parent=parent, retain_on_delete=True)
    if ownership == "adopt":
        return pulumi.ResourceOptions(parent=parent, retain_on_delete=True,
                                      import_=IOT_LOG_GROUP_NAME,
                                      ignore_changes=["kmsKeyId", "retentionInDays", "tags"])
    return None


def iot_logging_trust_policy(partition: str, region: str, account_id: str) -> str:
    """Only AWS IoT, acting for this account in this region, may assume the logging role."""
    return service_trust_policy("iot.amazonaws.com", account_id,
                                f"arn:{partition}:iot:{region}:{account_id}:*",
                                sid="IotLogsForThisAccountAndRegion")


def iot_logging_policy(partition: str, region: str, account_id: str) -> str:
    """Write access to the region's AWSIotLogsV2 log group and nothing else.

    No CreateLogGroup/PutRetentionPolicy: the group is ours (KMS, retention) and IoT
    must not recreate or change it.
    """
    group = f"arn:{partition}:logs:{region}:{account_id}:log-group:{IOT_LOG_GROUP_NAME}"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CreateStreamsInIotLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams"],
                "Resource": [f"{group}:*"],
            },
            {
                "Sid": "WriteIotLogEvents",
                "Effect": "Allow",
                "Action": ["logs:PutLogEvents"],
                "Resource": [f"{group}:log-stream:*"],
            },
        ],
    }, sort_keys=True)


class DeviceEdge(pulumi.ComponentResource):
    """The device-facing edge of one region."""

    def __init__(self, name: str, args: DeviceEdgeArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:edge:DeviceEdge", name, None, opts)
        region = args.region
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        invoke_opts = pulumi.InvokeOutputOptions(parent=self)
        account_id = args.account.account_id
        partition = args.account.partition

        def resource_name(suffix: str) -> str:
            return f"{args.name_prefix}-{suffix}"

        # --- server certificate for the device domain -------------------------------
        self.acm_certificate: aws.acm.Certificate | None = None
        validation_certificate_arn: str | None = None
        if args.server_certificate_mode == "acm":
            # The validation record itself is the edge's global part (validation.py), shared
            # by all regions; here we only wait until ACM has issued this region's cert.
            issued = dns_validated_certificate(
                f"{name}-server-cert", parent=self, region=region, domain=args.device_domain,
                tags=tags)
            self.acm_certificate = issued.certificate
            server_certificate_arn: pulumi.Input[str] = issued.arn
        else:
            if not args.server_certificate_arn:
                raise ValueError(f"{region}: imported server certificate mode needs its ARN")
            server_certificate_arn = args.server_certificate_arn
            validation_certificate_arn = args.validation_certificate_arn
        self.server_certificate_arn = pulumi.Output.from_input(server_certificate_arn)

        # --- domain configuration ---------------------------------------------------
        # A new server certificate (or validation certificate, or domain) replaces the
        # domain configuration. Its name is fixed and AWS allows one configuration per
        # domain name, so create-before-delete would collide with itself; delete first (the
        # provider disables it, then deletes it), then create with the new certificate. The
        # old ACM certificate is deleted last, once nothing uses it. Rotation path and the
        # short outage it means: components/edge/README.md, "Rotating the server certificate".
        self.domain_configuration = aws.iot.DomainConfiguration(
            f"{name}-domain",
            region=region,
            name=args.domain_configuration_name,
            domain_name=args.device_domain,
            service_type="DATA",
            server_certificate_arns=[server_certificate_arn],
            # AWS wants a publicly trusted certificate proving domain ownership only when
            # the server certificate is not publicly trusted (imported, private CA).
            validation_certificate_arn=validation_certificate_arn,
            # Devices authenticate with X.509 over MQTT only (8883, and 443 without ALPN).
            authentication_type="AWS_X509",
            application_protocol="SECURE_MQTT",
            tls_config=aws.iot.DomainConfigurationTlsConfigArgs(
                security_policy=args.tls_security_policy),
            status="ENABLED",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

        # --- our CA, the device policy and registry events --------------------------
        # One registration per CA of the rotation, in the state the config gives it.
        self.ca_certificates: dict[str, aws.iot.CaCertificate] = {}
        for ca in (args.device_cas or single(args.ca_certificate_pem)).cas:
            self.ca_certificates[ca.name] = aws.iot.CaCertificate(
                ca_logical_name(name, ca),
                region=region,
                ca_certificate_pem=ca.pem,
                # SNI_ONLY: no verification certificate, so the CA key never has to sign for
                # AWS; devices must send SNI, which our custom domain requires anyway.
                certificate_mode="SNI_ONLY",
                # Retired: INACTIVE (its devices were all re-issued); retiring: no new
                # registrations, the ones it has keep working.
                active=ca.active,
                allow_auto_registration=ca.auto_registration,
                tags=tags,
                opts=child,
            )
        issuing = (args.device_cas or single(args.ca_certificate_pem)).issuing
        self.ca_certificate = self.ca_certificates[issuing.name]
        self.device_policy = aws.iot.Policy(
            f"{name}-device-policy",
            region=region,
            name=args.device_policy_name,
            policy=pulumi.Output.all(partition, account_id).apply(
                lambda v: device_policy_document(args.app_name, v[0], region, v[1])),
            tags=tags,
            opts=child,
        )
        # --- account-wide IoT settings, as far as this stack owns them ------------------
        # Singletons of the account and region: retained when this stack stops declaring them
        # (removal, a dropped region, destroy), with the role they use, so whatever else in
        # the account relies on them keeps working (README, "Account-wide settings").
        # components/edge/settings.py and the edge README say what each choice does.
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        owned = args.account_settings
        self.event_configurations: aws.iot.EventConfigurations | None = None
        declared_events = event_configurations(owned.event_configurations)
        if declared_events is not None:
            turned_off = sorted(t for t, on in declared_events.items() if not on)
            if turned_off:
                pulumi.log.warn(
                    f"{region}: iotAccountSettings.eventConfigurations is 'manage': AWS IoT "
                    f"registry events {', '.join(turned_off)} are turned OFF for the whole "
                    "account in this region; use 'adopt' if anything else uses them",
                    resource=self)
            self.event_configurations = aws.iot.EventConfigurations(
                f"{name}-events",
                region=region,
                event_configurations=declared_events,
                opts=retained,
            )

        self.log_group: aws.cloudwatch.LogGroup | None = None
        group_options = log_group_options(owned.iot_log_group, self)
        if group_options is not None:
            self.log_group = aws.cloudwatch.LogGroup(
                f"{name}-iot-logs",
                region=region,
                name=IOT_LOG_GROUP_NAME,
                kms_key_id=args.log_key_arn,
                retention_in_days=args.log_retention_days,
                tags=tags,
                opts=group_options,
            )

        self.logging_role: aws.iam.Role | None = None
        self.logging_options: aws.iot.LoggingOptions | None = None
        if owned.logging_options == "manage":
            # Retained with the setting that uses it, so it carries no fixed name: declaring
            # the setting again later creates a new role instead of colliding with this one.
            self.logging_role = aws.iam.Role(
                f"{name}-iot-logging-role",
                description=f"AWS IoT in {region} writes its logs to {IOT_LOG_GROUP_NAME}",
                assume_role_policy=pulumi.Output.all(partition, account_id).apply(
                    lambda v: iot_logging_trust_policy(v[0], region, v[1])),
                tags=tags,
                opts=retained,
            )
            logging_policy = aws.iam.RolePolicy(
                f"{name}-iot-logging-policy",
                role=self.logging_role.id,
                name="write-iot-logs",
                policy=pulumi.Output.all(partition, account_id).apply(
                    lambda v: iot_logging_policy(v[0], region, v[1])),
                opts=retained,
            )
            # IoT must find the permission (and our group, when we own it) before it logs.
            ready: list[pulumi.Resource] = [logging_policy]
            if self.log_group is not None:
                ready.append(self.log_group)
            self.logging_options = aws.iot.LoggingOptions(
                f"{name}-iot-logging",
                region=region,
                default_log_level=IOT_LOG_LEVEL,
                disable_all_logs=False,
                role_arn=self.logging_role.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=ready, retain_on_delete=True),
            )

        # --- health and latency DNS ---------------------------------------------------
        data_endpoint = aws.iot.get_endpoint_output(endpoint_type="iot:Data-ATS", region=region,
                                                    opts=invoke_opts)
        # Route53 cannot speak MQTT, so the region counts as healthy only while both hold:
        # IoT reports no burst of server-side connect failures (the alarm; IoT publishes no
        # datapoint in a minute without errors), and the region's MQTT port accepts TCP
        # connections (a TCP check needs no client cert).
        endpoint = latency_endpoint(name, parent=self, spec=LatencyEndpointSpec(
            region=region, hosted_zone_id=args.hosted_zone_id, domain=args.device_domain,
            alarm=ServerErrorAlarm(
                logical_suffix="-connect-health",
                alarm_name=resource_name("iot-connect-server-errors"),
                description=(
                    f"Devices fail to connect to AWS IoT in {region} because of server errors; "
                    f"while in ALARM, Route53 stops answering {args.device_domain} with "
                    f"{region}."),
                namespace="AWS/IoT", metric_name="Connect.ServerError",
                dimensions={"Protocol": "MQTT"},
                errors_per_minute=CONNECT_SERVER_ERRORS_PER_MINUTE),
            probe_fqdn=data_endpoint.endpoint_address, probe_port=MQTT_TLS_PORT,
            labels=HealthLabels(alarm_check=resource_name("iot-connect-errors"),
                                tcp_check=resource_name("iot-mqtt-port"),
                                combined=resource_name("iot-edge")),
            target=CnameTarget(value=data_endpoint.endpoint_address, ttl=LATENCY_RECORD_TTL),
            tags=tags,
            # Only answer with this region once its domain configuration serves the name.
            record_depends_on=[self.domain_configuration]))
        self.health_alarm = endpoint.alarm
        self.health_check = endpoint.health_check
        self.latency_record = endpoint.record
        self.evacuation_control = endpoint.evacuation_control

        self.ca_certificate_id: pulumi.Output[str] = self.ca_certificate.id
        self.device_policy_name: pulumi.Output[str] = self.device_policy.name
        self.device_policy_arn: pulumi.Output[str] = self.device_policy.arn
        self.data_endpoint: pulumi.Output[str] = data_endpoint.endpoint_address
        self.register_outputs({
            "domain_configuration_name": self.domain_configuration.name,
            "server_certificate_arn": self.server_certificate_arn,
            "ca_certificate_id": self.ca_certificate.id,
            "device_policy_name": self.device_policy.name,
            "health_check_id": self.health_check.id,
            "evacuation_control_id": self.evacuation_control.id,
            "data_endpoint": data_endpoint.endpoint_address,
        })

