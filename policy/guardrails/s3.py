"""S3: public access blocked, no public ACL or policy, CMK encryption, versioning, TLS only.

pulumi-aws v7 configures a bucket through separate resources (public access block, ACL,
encryption, versioning, policy) that name the bucket; the stack checks join them by bucket
name. The legacy inline arguments of `Bucket`/`BucketV2` count too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import (
    as_list,
    get,
    is_customer_managed_key,
    resource_guardrail,
    stack_guardrail,
    truthy,
)
from policy.semantics import transport

from ._exposure import resource_policy_check, tls_only_problem

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
              "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
PUBLIC_GRANTEES = ("acs.amazonaws.com/groups/global/AllUsers",
                   "acs.amazonaws.com/groups/global/AuthenticatedUsers")
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _bucket_names(bucket: PolicyResource) -> set[str]:
    return {str(bucket.props.get(k)) for k in ("bucket", "id") if bucket.props.get(k)}


def _settings(args: StackValidationArgs, types: tuple[str, ...] | str) -> dict[str, list[PolicyResource]]:
    wanted = (types,) if isinstance(types, str) else types
    found: dict[str, list[PolicyResource]] = {}
    for r in args.resources:
        if r.resource_type in wanted:
            found.setdefault(str(r.props.get("bucket")), []).append(r)
    return found


def _buckets(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in BUCKETS]


def _for_bucket(bucket: PolicyResource, settings: dict[str, list[PolicyResource]]) -> list[PolicyResource]:
    return [s for name in _bucket_names(bucket) for s in settings.get(name, [])]


def _public_access_block(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    account_blocks = [r for r in args.resources if r.resource_type == ACCOUNT_PUBLIC_ACCESS_BLOCK
                      and all(truthy(r.props.get(f)) for f in BLOCK_FLAGS)]
    blocks = _settings(args, PUBLIC_ACCESS_BLOCK)
    for bucket in _buckets(args):
        mine = _for_bucket(bucket, blocks)
        if account_blocks:
            continue
        if not mine:
            yield "bucket has no aws.s3.BucketPublicAccessBlock (all four settings true)", bucket.urn
            continue
        off = sorted({f for b in mine for f in BLOCK_FLAGS if not truthy(b.props.get(f))})
        if off:
            yield f"public access block leaves {', '.join(off)} off", bucket.urn


def _grants_public(grants: Any) -> bool:
    for grant in as_list(grants):
        for uri in [get(grant, "grantee", "uri"), get(grant, "uri")] + \
                [get(g, "uri") for g in as_list(get(grant, "grantees"))]:
            if isinstance(uri, str) and uri.rstrip("/").endswith(PUBLIC_GRANTEES):
                return True
    return False


def _no_public_acl(args: ResourceValidationArgs) -> Iterator[str]:
    acl = str(args.props.get("acl") or "")
    if acl in PUBLIC_ACLS:
        yield f"canned ACL {acl!r} opens the bucket to everyone"
    grants = args.props.get("grants") if args.resource_type in BUCKETS else \
        get(args.props, "accessControlPolicy", "grants")
    if _grants_public(grants):
        yield "an ACL grant names AllUsers/AuthenticatedUsers"


def _sse_rules(resource: PolicyResource | ResourceValidationArgs) -> list[Mapping[str, Any]]:
    props = resource.props
    rules = as_list(props.get("rules"))
    legacy = props.get("serverSideEncryptionConfiguration")
    for config in as_list(legacy) + as_list(props.get("serverSideEncryptionConfigurations")):
        rules += as_list(get(config, "rule")) + as_list(get(config, "rules"))
    return [r for r in rules if isinstance(r, Mapping)]


def _cmk_rule(rule: Mapping[str, Any]) -> bool:
    default = rule.get("applyServerSideEncryptionByDefault")
    for entry in as_list(default):
        algorithm = str(get(entry, "sseAlgorithm") or "")
        if algorithm.startswith("aws:kms") and is_customer_managed_key(get(entry, "kmsMasterKeyId")):
            return True
    return False


def _cmk_encryption(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    configs = _settings(args, ENCRYPTION)
    for bucket in _buckets(args):
        rules = _sse_rules(bucket) + [r for c in _for_bucket(bucket, configs) for r in _sse_rules(c)]
        if not any(_cmk_rule(r) for r in rules):
            yield ("bucket default encryption is not aws:kms with a customer-managed "
                   "kmsMasterKeyId (SSE-S3 and aws/s3 allow no key policy)", bucket.urn)


def _versioning(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    configs = _settings(args, VERSIONING)
    for bucket in _buckets(args):
        legacy = [truthy(get(v, "enabled")) for v in as_list(bucket.props.get("versioning")) +
                  as_list(bucket.props.get("versionings"))]
        separate = [str(get(v.props, "versioningConfiguration", "status") or "") == "Enabled"
                    for v in _for_bucket(bucket, configs)]
        if not any(legacy + separate):
            yield "bucket versioning is not Enabled: an overwritten or deleted artefact is gone", \
                bucket.urn


def _ssl_only(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    policies = _settings(args, BUCKET_POLICY)
    for bucket in _buckets(args):
        candidates = [bucket.props.get("policy")] + [p.props.get("policy")
                                                     for p in _for_bucket(bucket, policies)]
        name = str(bucket.props.get("bucket") or bucket.props.get("id") or "*")

        def arns(document: Any, name: str = name) -> list[str]:
            bucket_arn = f"arn:{transport.partition_of(document)}:s3:::{name}"
            return [bucket_arn, f"{bucket_arn}/*"]  # the bucket and every object in it

        problem = tls_only_problem([c for c in candidates if c], "s3", arns)
        if problem:
            yield f"bucket policy is not TLS-only (aws:SecureTransport): {problem}", bucket.urn


POLICIES: list[Policy] = [
    stack_guardrail(
        "s3-public-access-block",
        "Every bucket has a public access block with all four settings on (or the account has)",
        ["CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56", "CKV2_AWS_6", "AwsSolutions-S2",
         "Security Hub S3.1", "Security Hub S3.8",
         "AWS Config s3-bucket-level-public-access-prohibited"],
        _public_access_block, severity=Severity.CRITICAL),
    resource_guardrail(
        "s3-no-public-acl",
        "Buckets carry no public canned ACL or AllUsers/AuthenticatedUsers grant",
        ["CKV_AWS_20", "CKV_AWS_57", "Security Hub S3.2", "Security Hub S3.3",
         "AWS Config s3-bucket-public-read-prohibited",
         "AWS Config s3-bucket-public-write-prohibited"],
        [*BUCKETS, *ACLS], _no_public_acl, severity=Severity.CRITICAL),
    resource_guardrail(
        "s3-no-public-policy",
        "Bucket policies admit no one outside the account (shared resource-policy judgement)",
        ["CKV_AWS_70", "Security Hub S3.2", "Security Hub S3.3",
         "AWS Config s3-bucket-policy-not-more-permissive"],
        [*BUCKETS, BUCKET_POLICY],
        resource_policy_check({BUCKETS[0]: ("policy",), BUCKETS[1]: ("policy",),
                               BUCKET_POLICY: ("policy",)}),
        severity=Severity.CRITICAL),
    stack_guardrail(
        "s3-cmk-encryption",
        "Buckets encrypt by default with a customer-managed KMS key",
        ["CKV_AWS_145", "Security Hub S3.17", "AWS Config s3-default-encryption-kms"],
        _cmk_encryption, severity=Severity.MEDIUM),
    stack_guardrail(
        "s3-versioning",
        "Buckets (artefacts, templates, exports) keep versions",
        ["CKV_AWS_21", "Security Hub S3.14", "AWS Config s3-bucket-versioning-enabled"],
        _versioning, severity=Severity.MEDIUM),
    stack_guardrail(
        "s3-ssl-only",
        "Every bucket's policy denies requests without TLS (aws:SecureTransport)",
        ["AwsSolutions-S10", "Security Hub S3.5", "AWS Config s3-bucket-ssl-requests-only"],
        _ssl_only, severity=Severity.MEDIUM),
]
