"""Fleet provisioning by trusted user (installer), in one region. See README.md.

Installers sign in to a Cognito user pool (SRP, TOTP MFA), exchange their ID token at an
identity pool for credentials of a role that may only call `iot:CreateProvisioningClaim`
on this region's template, and hand the 5-minute claim certificate to the device. The
device runs the fleet-provisioning MQTT API; the template's pre-provisioning hook allows
only allow-listed serials and records the claim; AWS IoT creates the thing, activates the
certificate and attaches the device policy; the recorder, fed by the provisioning table's
stream, confirms that with AWS IoT and writes the inventory item (replication contract),
from which every other region registers the device.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.dead_letters import dead_letter_queue
from components.fleet_provisioning.iam_documents import (
    allow_list_admin_policy,
    hook_role_policy,
    installer_role_policy,
    installer_role_trust,
    provisioning_role_policy,
    recorder_role_policy,
)
from components.fleet_provisioning.settings import FleetSettings
from components.fleet_provisioning.template import template_arn, template_body
from components.global_tables import RegionalTable
from components.iam import service_trust_policy
from components.lambda_function import dependencies_layer, python_function
from components.naming import role_name
from components.packaging import LambdaLayer
from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import Attr, State
from lambdas.contracts.environment import FleetHookEnvironment, FleetRecorderEnvironment

HOOK_PACKAGE = "fleet_provisioning_hook"
RECORDER_PACKAGE = "fleet_provisioning_recorder"
INSTALLERS_GROUP = "installers"
# Administrators of the allow-list in the installer web app (the CLI uses the operator's own
# AWS credentials instead).
ALLOW_LIST_ADMINS_GROUP = "allow-list-admins"
HOOK_PAYLOAD_VERSION = "2020-04-01"  # the only version AWS IoT defines
HOOK_TIMEOUT_SECONDS = 5  # AWS IoT stops waiting after 5 s; running longer is useless
# How long one recorder invocation polls AWS IoT (when it gives a claim up is the allow-list
# contract's CLAIM_STALE_AFTER, shared with the hook).
RECORDER_CONFIRM_WAIT_SECONDS = 20


def recorder_filter_pattern(region: str) -> str:
    """Event-source-mapping filter: only allow-list entries (lambdas/contracts/fleet_allow_list.py)
    that turned CLAIMED in this region (a replica's stream also carries the other regions'
    writes)."""
    return json.dumps({
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {
            Attr.KIND: {"S": [allow_list.KIND]},
            Attr.STATE: {"S": [State.CLAIMED]},
            Attr.CLAIM_REGION: {"S": [region]},
        }},
    }, sort_keys=True)


@dataclass(frozen=True)
class FleetProvisioningArgs:
    region: str
    name_prefix: str  # `<app>-<env>-<region>`
    template_name: str  # components/naming.py: installers claim with this name
    is_prod: bool
    device_policy_name: pulumi.Input[str]
    inventory: RegionalTable
    provisioning: RegionalTable
    kms_key_arn: pulumi.Input[str]
    tables_key_arn: pulumi.Input[str]  # the global tables' CMK in this region
    log_retention_days: int
    account: AwsAccount
    lambda_layer: LambdaLayer
    settings: FleetSettings = field(default_factory=FleetSettings)
    # https origins of the installer web app (components/installer_web): the app client's
    # callback and sign-out URLs. Empty: the app client has none.
    web_origins: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetOutputs:
    """What installers' and administrators' tools read from one region (stack outputs)."""

    template_name: str
    template_arn: pulumi.Output[str]
    user_pool_id: pulumi.Output[str]
    user_pool_client_id: pulumi.Output[str]
    identity_pool_id: pulumi.Output[str]
    installers_group: str
    recorder_dead_letter_queue_url: pulumi.Output[str]


class FleetProvisioning(pulumi.ComponentResource):
    """Cognito installers, identity pool, provisioning template + hook, claim policy and
    the recorder that writes provisioned devices into the inventory."""

    def __init__(self, name: str, args: FleetProvisioningArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The type token names the folder; the alias keeps the URNs deployed as `iotmr:fleet`.
        super().__init__("iotmr:fleet_provisioning:FleetProvisioning", name, None,
                         pulumi.ResourceOptions(
                             aliases=[pulumi.Alias(type_="iotmr:fleet:FleetProvisioning")]
                         ).merge(opts))
        region = args.region
        settings = args.settings
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        account_id = args.account.account_id
        partition = args.account.partition
        prefix = args.name_prefix

        self.template_name = args.template_name
        self.template_arn: pulumi.Output[str] = pulumi.Output.all(partition, account_id).apply(
            lambda v: template_arn(v[0], region, v[1], self.template_name))

        # --- installers: user pool, app client, group ----------------------------------
        self.user_pool = aws.cognito.UserPool(
            f"{name}-installers", region=region, name=f"{prefix}-installers",
            # Threat protection ("advanced security") ENFORCED needs the Plus feature plan.
            user_pool_tier="PLUS",
            user_pool_add_ons=aws.cognito.UserPoolUserPoolAddOnsArgs(
                advanced_security_mode="ENFORCED"),
            admin_create_user_config=aws.cognito.UserPoolAdminCreateUserConfigArgs(
                allow_admin_create_user_only=True),  # no self sign-up
            mfa_configuration="ON",
            software_token_mfa_configuration=aws.cognito.UserPoolSoftwareTokenMfaConfigurationArgs(
                enabled=True),
            password_policy=aws.cognito.UserPoolPasswordPolicyArgs(
                minimum_length=settings.password_minimum_length,
                require_lowercase=True, require_uppercase=True, require_numbers=True,
                require_symbols=True, password_history_size=5,
                temporary_password_validity_days=settings.temporary_password_validity_days),
            username_configuration=aws.cognito.UserPoolUsernameConfigurationArgs(
                case_sensitive=False),
            auto_verified_attributes=["email"],
            account_recovery_setting=aws.cognito.UserPoolAccountRecoverySettingArgs(
                recovery_mechanisms=[aws.cognito.UserPoolAccountRecoverySettingRecoveryMechanismArgs(
                    name="verified_email", priority=1)]),
            deletion_protection="ACTIVE" if args.is_prod else "INACTIVE",
            tags=tags, opts=child)
        self.user_pool_client = aws.cognito.UserPoolClient(
            f"{name}-installer-app", region=region, name=f"{prefix}-installer-app",
            user_pool_id=self.user_pool.id,
            generate_secret=False,  # a CLI/mobile app cannot keep a secret
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            supported_identity_providers=["COGNITO"],
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            auth_session_validity=3,  # minutes to answer the MFA challenge
            access_token_validity=60, id_token_validity=60,
            refresh_token_validity=settings.refresh_token_validity_hours,
            token_validity_units=aws.cognito.UserPoolClientTokenValidityUnitsArgs(
                access_token="minutes", id_token="minutes", refresh_token="hours"),
            # The web app signs in with SRP from its own page (no hosted UI, no OAuth flow):
            # these name the only origins the client is meant to be used from.
            callback_urls=[f"{origin}/" for origin in args.web_origins] or None,
            logout_urls=[f"{origin}/" for origin in args.web_origins] or None,
            opts=child)

        # --- identity pool and the installer role ----------------------------------------
        self.identity_pool = aws.cognito.IdentityPool(
            f"{name}-identities", region=region,
            identity_pool_name=f"{prefix}_installers".replace("-", "_"),  # [\w ]+ only
            allow_unauthenticated_identities=False,
            allow_classic_flow=False,  # enhanced flow only: the pool picks the role
            cognito_identity_providers=[aws.cognito.IdentityPoolCognitoIdentityProviderArgs(
                client_id=self.user_pool_client.id, provider_name=self.user_pool.endpoint,
                server_side_token_check=True)],
            tags=tags, opts=child)
        self.installer_role = aws.iam.Role(
            f"{name}-installer-role", name=role_name(f"{prefix}-fleet-installer"),
            assume_role_policy=self.identity_pool.id.apply(installer_role_trust),
            max_session_duration=3600, tags=tags, opts=child)
        aws.iam.RolePolicy(
            f"{name}-installer-policy", role=self.installer_role.id, name="create-claim",
            policy=self.template_arn.apply(installer_role_policy), opts=child)
        self.installers_group = aws.cognito.UserGroup(
            f"{name}-installers-group", region=region, user_pool_id=self.user_pool.id,
            name=INSTALLERS_GROUP, description="may request provisioning claims",
            precedence=1, role_arn=self.installer_role.arn, opts=child)
        # Allow-list administrators (web app): their own role, trusted like the installers'.
        self.admin_role = aws.iam.Role(
            f"{name}-allow-list-admin-role", name=role_name(f"{prefix}-fleet-allow-list-admin"),
            assume_role_policy=self.identity_pool.id.apply(installer_role_trust),
            max_session_duration=3600, tags=tags, opts=child)
        aws.iam.RolePolicy(
            f"{name}-allow-list-admin-policy", role=self.admin_role.id, name="allow-list",
            policy=pulumi.Output.all(args.provisioning.arn, args.tables_key_arn).apply(
                lambda v: allow_list_admin_policy(table_arn=v[0], tables_key_arn=v[1],
                                                  region=region)),
            opts=child)
        self.admins_group = aws.cognito.UserGroup(
            f"{name}-allow-list-admins-group", region=region, user_pool_id=self.user_pool.id,
            name=ALLOW_LIST_ADMINS_GROUP, description="may edit the fleet allow-list",
            precedence=2, role_arn=self.admin_role.arn, opts=child)
        # Token mapping: only users whose ID token carries the installers group's role get
        # credentials; anyone else in the pool is denied (no default fallback).
        aws.cognito.IdentityPoolRoleAttachment(
            f"{name}-identity-roles", region=region, identity_pool_id=self.identity_pool.id,
            roles={"authenticated": self.installer_role.arn},
            role_mappings=[aws.cognito.IdentityPoolRoleAttachmentRoleMappingArgs(
                identity_provider=pulumi.Output.concat(
                    self.user_pool.endpoint, ":", self.user_pool_client.id),
                type="Token", ambiguous_role_resolution="Deny")],
            opts=child)

        # No claim-certificate policy: a claim from CreateProvisioningClaim takes only a
        # template name, never appears in the account's certificates and so cannot be given
        # a policy (README, "What a claim may do"). The controls in its place: the installer
        # role may claim for this template only, a claim lives 5 minutes, and the hook admits
        # only an allow-listed serial connecting as `<claimClientIdPrefix><serial>`, once.

        # --- shared: dependencies layer ------------------------------------------------------
        self.dependencies_layer = dependencies_layer(
            f"{name}-deps", parent=self, region=region, layer_name=f"{prefix}-fleet-deps",
            lambda_layer=args.lambda_layer)

        # --- pre-provisioning hook -----------------------------------------------------------
        hook_name = f"{prefix}-fleet-hook"
        self.hook = python_function(
            f"{name}-hook", parent=self, region=region, account_id=account_id,
            kms_key_arn=args.kms_key_arn, log_retention_days=args.log_retention_days, tags=tags,
            function_name=hook_name, package=HOOK_PACKAGE,
            description="Fleet provisioning pre-provisioning hook: allow-listed serials only",
            role_policy_name="allow-list",
            role_policy=lambda log_group_arn: pulumi.Output.all(
                log_group_arn, args.kms_key_arn, args.provisioning.arn, args.inventory.arn,
                args.tables_key_arn, partition, account_id).apply(
                lambda v: hook_role_policy(log_group_arn=v[0], key_arn=v[1],
                                           function_name=hook_name, partition=v[5],
                                           region=region, account_id=v[6],
                                           provisioning_table_arn=v[2],
                                           inventory_table_arn=v[3], tables_key_arn=v[4])),
            environment=FleetHookEnvironment[pulumi.Input[str]](
                provisioning_table_name=args.provisioning.name,
                inventory_table_name=args.inventory.name,
                template_arn=self.template_arn,
                claim_client_id_prefix=settings.claim_client_id_prefix,
                hook_budget_ms=str(settings.hook_budget_milliseconds)).variables(),
            layer=self.dependencies_layer,
            # CPU scales with memory: 512 MB keeps the cold start (powertools, pydantic,
            # boto3) well inside AWS IoT's 5-second limit.
            memory_size=512, timeout=HOOK_TIMEOUT_SECONDS)
        # AWS IoT acting for this account may invoke the hook: `source-account`, one of the
        # two keys "Pre-provisioning hooks" asks for ("include the source-arn or
        # source-account"). AWS does not document which ARN IoT presents when it invokes a
        # hook, and a permission pinned to the template ARN would refuse every device if it
        # is another one; the hook itself checks `templateArn`. No fixed statement id: the
        # provider names it, so a replacement never collides with the old statement.
        self.hook_permission = aws.lambda_.Permission(
            f"{name}-hook-permission", region=region,
            action="lambda:InvokeFunction", function=self.hook.function.name,
            principal="iot.amazonaws.com", source_account=account_id, opts=child)

        # --- provisioning role and template --------------------------------------------------
        self.provisioning_role = aws.iam.Role(
            f"{name}-provisioning-role", name=role_name(f"{prefix}-fleet-provisioning"),
            # AWS IoT's documented confused-deputy form: SourceArn arn:...:iot:<region>:<acct>:*
            assume_role_policy=pulumi.Output.all(partition, account_id).apply(
                lambda v: service_trust_policy("iot.amazonaws.com", v[1],
                                               f"arn:{v[0]}:iot:{region}:{v[1]}:*")),
            tags=tags, opts=child)
        provisioning_policy = aws.iam.RolePolicy(
            f"{name}-provisioning-policy", role=self.provisioning_role.id, name="provision",
            policy=pulumi.Output.all(partition, account_id, args.device_policy_name).apply(
                lambda v: provisioning_role_policy(partition=v[0], region=region,
                                                   account_id=v[1],
                                                   device_policy_name=v[2])),
            opts=child)
        self.template = aws.iot.ProvisioningTemplate(
            f"{name}-template", region=region, name=self.template_name,
            description="Fleet provisioning by trusted user (installer claims)",
            type="FLEET_PROVISIONING", enabled=True,
            provisioning_role_arn=self.provisioning_role.arn,
            template_body=pulumi.Output.from_input(args.device_policy_name).apply(template_body),
            pre_provisioning_hook=aws.iot.ProvisioningTemplatePreProvisioningHookArgs(
                target_arn=self.hook.function.arn, payload_version=HOOK_PAYLOAD_VERSION),
            tags=tags,
            # Every template_body change would add a template version and the provider never
            # deletes old ones (AWS keeps at most 5): a new body replaces the template, which
            # then holds one version. Same name, so the old one goes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                provisioning_policy, self.hook_permission],
                replace_on_changes=["templateBody"], delete_before_replace=True))

        # --- recorder: provisioning-table stream -> inventory --------------------------------
        recorder_name = f"{prefix}-fleet-recorder"
        self.dead_letter_queue = dead_letter_queue(
            f"{name}-recorder-dlq", parent=self, region=region,
            queue_name=f"{recorder_name}-dlq", kms_key_arn=args.kms_key_arn, tags=tags)
        self.recorder = python_function(
            f"{name}-recorder", parent=self, region=region, account_id=account_id,
            kms_key_arn=args.kms_key_arn, log_retention_days=args.log_retention_days, tags=tags,
            function_name=recorder_name, package=RECORDER_PACKAGE,
            description="Fleet provisioning: confirm provisioned devices, write the inventory",
            role_policy_name="record-devices",
            role_policy=lambda log_group_arn: pulumi.Output.all(
                log_group_arn, args.kms_key_arn, partition, account_id,
                args.provisioning.stream_arn, args.provisioning.arn, args.inventory.arn,
                self.dead_letter_queue.arn, args.tables_key_arn).apply(
                lambda v: recorder_role_policy(
                    log_group_arn=v[0], key_arn=v[1], function_name=recorder_name,
                    partition=v[2], region=region, account_id=v[3],
                    provisioning_stream_arn=v[4], provisioning_table_arn=v[5],
                    inventory_table_arn=v[6], queue_arn=v[7], tables_key_arn=v[8])),
            environment=FleetRecorderEnvironment[pulumi.Input[str]](
                provisioning_table_name=args.provisioning.name,
                inventory_table_name=args.inventory.name,
                confirm_wait_seconds=str(RECORDER_CONFIRM_WAIT_SECONDS)).variables(),
            layer=self.dependencies_layer, memory_size=256, timeout=60)
        self.recorder_trigger = aws.lambda_.EventSourceMapping(
            f"{name}-recorder-trigger", region=region,
            event_source_arn=args.provisioning.stream_arn,
            function_name=self.recorder.function.arn,
            starting_position="LATEST", batch_size=10,
            bisect_batch_on_function_error=True, maximum_retry_attempts=5,
            # a record older than the claim window has nothing left to wait for
            maximum_record_age_in_seconds=int(allow_list.CLAIM_STALE_AFTER.total_seconds()),
            function_response_types=["ReportBatchItemFailures"],
            filter_criteria=aws.lambda_.EventSourceMappingFilterCriteriaArgs(filters=[
                aws.lambda_.EventSourceMappingFilterCriteriaFilterArgs(
                    pattern=recorder_filter_pattern(region))]),
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                    destination_arn=self.dead_letter_queue.arn)),
            tags=tags,
            # One mapping per (stream, function): a replacement (new starting position) must
            # delete the old mapping before it creates the new one.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.recorder.role_policy],
                                        delete_before_replace=True))

        self.outputs = FleetOutputs(
            template_name=self.template_name, template_arn=self.template.arn,
            user_pool_id=self.user_pool.id, user_pool_client_id=self.user_pool_client.id,
            identity_pool_id=self.identity_pool.id, installers_group=INSTALLERS_GROUP,
            recorder_dead_letter_queue_url=self.dead_letter_queue.url)
        self.register_outputs({
            "user_pool_id": self.user_pool.id,
            "user_pool_client_id": self.user_pool_client.id,
            "identity_pool_id": self.identity_pool.id,
            "installer_role_arn": self.installer_role.arn,
            "allow_list_admin_role_arn": self.admin_role.arn,
            "template_name": self.template.name,
            "template_arn": self.template.arn,
            "hook_function_arn": self.hook.function.arn,
            "recorder_function_arn": self.recorder.function.arn,
            "recorder_dead_letter_queue_url": self.dead_letter_queue.url,
        })
