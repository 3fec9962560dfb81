"""The installer web app's hosting: private S3 bucket, CloudFront with origin access control,
`<subdomain>.<deviceDomain>` with its certificate in us-east-1, strict security headers.

    browser --TLS 1.2+ (SNI, ACM us-east-1)--> CloudFront --OAC (SigV4)--> S3 (private, CMK)
        response headers policy: CSP (this stack's Cognito, IoT, DynamoDB endpoints only),
        HSTS, frame-ancestors 'none', nosniff, no referrer

The bucket admits only this distribution (bucket policy `AWS:SourceArn`), and its KMS key lets
CloudFront decrypt only for this distribution. See README.md in this folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.failover import validation_record
from components.iam import account_administers_key_statement, policy_document
from components.installer_web.bundle import WebBundle
from components.installer_web.headers import (
    HSTS_MAX_AGE_SECONDS,
    PERMISSIONS_POLICY,
    connect_origins,
    content_security_policy,
)
from components.installer_web.site_config import CONFIG_KEY, SiteRegion, config_document, region_values

CERTIFICATE_REGION = "us-east-1"  # CloudFront takes viewer certificates from us-east-1 only
# AWS managed cache policy "CachingOptimized": honours the objects' Cache-Control (no-cache).
CACHING_OPTIMIZED_POLICY_ID = "658327ea-f89d-4fab-a63d-7e88639e58f6"
MINIMUM_TLS = "TLSv1.2_2021"
NO_CACHE = "no-cache"  # fixed file names: browsers revalidate (ETag) on every load


@dataclass(frozen=True)
class InstallerWebArgs:
    name_prefix: str  # `<app>-<env>`
    stack: str
    primary_region: str
    site_domain: str
    hosted_zone_id: str
    device_domain: str
    claim_client_id_prefix: str
    installers_group: str
    admins_group: str
    regions: Sequence[SiteRegion]
    bundle: WebBundle
    account: AwsAccount
    is_prod: bool
    device_local_address: str | None = None
    price_class: str = "PriceClass_100"
    tags: Mapping[str, str] = field(default_factory=dict)


def bucket_policy(*, bucket_arn: str, distribution_arn: str) -> str:
    return policy_document([
        {"Sid": "ThisDistributionReadsTheSite", "Effect": "Allow",
         "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
         "Resource": f"{bucket_arn}/*",
         "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}}},
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [bucket_arn, f"{bucket_arn}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ])


def key_policy(*, account_id: str, partition: str, distribution_arn: str) -> str:
    return policy_document([
        account_administers_key_statement(account_id, partition),
        {"Sid": "ThisDistributionDecryptsTheSite", "Effect": "Allow",
         "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "kms:Decrypt",
         "Resource": "*", "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}}},
    ])


class InstallerWeb(pulumi.ComponentResource):
    def __init__(self, name: str, args: InstallerWebArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The type token names the folder; the alias keeps URNs declared as `iotmr:web`.
        super().__init__("iotmr:installer_web:InstallerWeb", name, None,
                         pulumi.ResourceOptions(
                             aliases=[pulumi.Alias(type_="iotmr:web:InstallerWeb")]
                         ).merge(opts))
        child = pulumi.ResourceOptions(parent=self)
        region = args.primary_region
        tags = dict(args.tags)
        account = args.account

        # --- storage: private bucket, customer-managed key ---------------------------------
        self.key = aws.kms.Key(
            f"{name}-key", region=region, description=f"{args.name_prefix}: installer web app",
            enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=child)
        aws.kms.Alias(f"{name}-key-alias", region=region,
                      name=f"alias/{args.name_prefix}-installer-web",
                      target_key_id=self.key.key_id, opts=child)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket", region=region,
            bucket=pulumi.Output.from_input(account.account_id).apply(
                lambda a: f"{args.name_prefix}-installer-web-{a}"),
            force_destroy=not args.is_prod,  # content is rebuilt from the repository
            tags=tags, opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block", region=region, bucket=self.bucket.id,
            block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
            restrict_public_buckets=True, opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", region=region, bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child)
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", region=region, bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=self.key.arn),
                bucket_key_enabled=True)],
            opts=child)
        aws.s3.BucketVersioning(
            f"{name}-versioning", region=region, bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"),
            opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", region=region, bucket=self.bucket.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="old-releases", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                noncurrent_version_expiration=aws.s3.
                BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=30),
                abort_incomplete_multipart_upload=aws.s3.
                BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1))],
            opts=child)

        # --- certificate (us-east-1) for the site's name -----------------------------------
        self.certificate = aws.acm.Certificate(
            f"{name}-certificate", region=CERTIFICATE_REGION, domain_name=args.site_domain,
            validation_method="DNS", key_algorithm="EC_prime256v1", tags=tags, opts=child)
        # The site is one per stack: this component is the record's one global owner.
        record = validation_record(
            f"{name}-certificate-validation-record", parent=self,
            hosted_zone_id=args.hosted_zone_id, certificate=self.certificate,
            domain=args.site_domain)
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate-validation", region=CERTIFICATE_REGION,
            certificate_arn=self.certificate.arn,
            validation_record_fqdns=[record.fqdn], opts=child)

        # --- CloudFront: OAC, security headers, TLS 1.2+ -------------------------------------
        self.content_security_policy = content_security_policy(
            connect_origins([r.region for r in args.regions], args.device_local_address))
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac", name=f"{args.name_prefix}-installer-web",
            description="CloudFront signs every request to the installer web app's bucket",
            origin_access_control_origin_type="s3", signing_behavior="always",
            signing_protocol="sigv4", opts=child)
        headers = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-headers", name=f"{args.name_prefix}-installer-web",
            comment="installer web app: strict CSP, HSTS, no framing",
            security_headers_config=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigArgs(
                content_security_policy=aws.cloudfront.
                ResponseHeadersPolicySecurityHeadersConfigContentSecurityPolicyArgs(
                    content_security_policy=self.content_security_policy, override=True),
                strict_transport_security=aws.cloudfront.
                ResponseHeadersPolicySecurityHeadersConfigStrictTransportSecurityArgs(
                    access_control_max_age_sec=HSTS_MAX_AGE_SECONDS, include_subdomains=True,
                    preload=True, override=True),
                content_type_options=aws.cloudfront.
                ResponseHeadersPolicySecurityHeadersConfigContentTypeOptionsArgs(override=True),
                frame_options=aws.cloudfront.
                ResponseHeadersPolicySecurityHeadersConfigFrameOptionsArgs(
                    frame_option="DENY", override=True),
                referrer_policy=aws.cloudfront.
                ResponseHeadersPolicySecurityHeadersConfigReferrerPolicyArgs(
                    referrer_policy="no-referrer", override=True)),
            custom_headers_config=aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigArgs(
                items=[aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(
                    header=header, value=value, override=True) for header, value in (
                        ("Permissions-Policy", PERMISSIONS_POLICY),
                        ("Cross-Origin-Opener-Policy", "same-origin"),
                        ("Cross-Origin-Resource-Policy", "same-origin"))]),
            opts=child)
        origin_id = "site-bucket"
        self.distribution = aws.cloudfront.Distribution(
            f"{name}-distribution", enabled=True, comment=f"{args.name_prefix} installer web app",
            aliases=[args.site_domain], default_root_object="index.html",
            http_version="http2and3", is_ipv6_enabled=True, price_class=args.price_class,
            origins=[aws.cloudfront.DistributionOriginArgs(
                origin_id=origin_id, domain_name=self.bucket.bucket_regional_domain_name,
                origin_access_control_id=oac.id)],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=origin_id, viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD"], cached_methods=["GET", "HEAD"], compress=True,
                cache_policy_id=CACHING_OPTIMIZED_POLICY_ID,
                response_headers_policy_id=headers.id),
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(
                    restriction_type="none")),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(
                acm_certificate_arn=validation.certificate_arn, ssl_support_method="sni-only",
                minimum_protocol_version=MINIMUM_TLS),
            tags=tags, opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        aws.s3.BucketPolicy(
            f"{name}-bucket-policy", region=region, bucket=self.bucket.id,
            policy=pulumi.Output.all(account.partition, self.bucket.bucket,
                                     self.distribution.arn).apply(
                lambda v: bucket_policy(bucket_arn=f"arn:{v[0]}:s3:::{v[1]}", distribution_arn=v[2])),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        aws.kms.KeyPolicy(
            f"{name}-key-policy", region=region, key_id=self.key.key_id,
            policy=pulumi.Output.all(account.account_id, account.partition,
                                     self.distribution.arn).apply(
                lambda v: key_policy(account_id=v[0], partition=v[1], distribution_arn=v[2])),
            opts=child)

        # --- content: the built bundle and the stack's config.json ---------------------------
        objects = pulumi.ResourceOptions(parent=self, depends_on=[encryption])
        for item in args.bundle.files:
            aws.s3.BucketObjectv2(
                f"{name}-{item.key}", region=region, bucket=self.bucket.id, key=item.key,
                source=pulumi.FileAsset(str(item.path)), source_hash=item.sha256,
                content_type=item.content_type, cache_control=NO_CACHE, tags=tags, opts=objects)
        self.config_json = pulumi.Output.all(*(region_values(r) for r in args.regions)).apply(
            lambda regions: config_document(
                stack=args.stack, device_domain=args.device_domain,
                claim_client_id_prefix=args.claim_client_id_prefix,
                installers_group=args.installers_group, admins_group=args.admins_group,
                device_local_address=args.device_local_address, regions=regions))
        aws.s3.BucketObjectv2(
            f"{name}-{CONFIG_KEY}", region=region, bucket=self.bucket.id, key=CONFIG_KEY,
            content=self.config_json, content_type="application/json", cache_control=NO_CACHE,
            tags=tags, opts=objects)

        # --- the name -------------------------------------------------------------------------
        for record_type in ("A", "AAAA"):
            aws.route53.Record(
                f"{name}-{record_type.lower()}", zone_id=args.hosted_zone_id,
                name=args.site_domain, type=record_type,
                aliases=[aws.route53.RecordAliasArgs(
                    name=self.distribution.domain_name,
                    zone_id=self.distribution.hosted_zone_id, evaluate_target_health=False)],
                opts=child)

        self.url = f"https://{args.site_domain}"
        self.register_outputs({
            "url": self.url,
            "distribution_id": self.distribution.id,
            "bucket": self.bucket.id,
            "content_security_policy": self.content_security_policy,
        })
