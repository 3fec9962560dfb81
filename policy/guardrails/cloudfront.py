"""CloudFront sites (the installer web app): HTTPS with TLS 1.2+ only, S3 origins reached
only through origin access control, strict security headers on every response, no secret in
what the site serves, and no us-east-1 certificate that is not a CloudFront one.

The bucket behind a distribution is judged by the S3 guardrails (public access block, no
public policy, CMK, TLS-only policy). AWS pages: "Restricting access to an Amazon S3 origin"
(OAC, SigV4 "always"), "Supported protocols and ciphers between viewers and CloudFront"
(TLSv1.2_2021), "Requirements for using SSL/TLS certificates with CloudFront" (us-east-1),
"Understand response headers policies".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity, StackValidationArgs

from policy.semantics.secrets import secret_shape

from ._common import (
    ACM_CERTIFICATE_TYPES,
    CLOUDFRONT_CERTIFICATE_REGION,
    as_list,
    get,
    number,
    resource_guardrail,
    resource_region,
    stack_guardrail,
    truthy,
)

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
BUCKET_OBJECTS = ("aws:s3/bucketObjectv2:BucketObjectv2", "aws:s3/bucketObject:BucketObject")
HTTPS_VIEWER_POLICIES = {"redirect-to-https", "https-only"}
MODERN_TLS = re.compile(r"^TLSv1\.(2|3)_\d{4}$")
MIN_HSTS_SECONDS = 31_536_000  # one year
_S3_DOMAIN = re.compile(r"\.s3[.-]([a-z0-9-]+\.)?amazonaws\.com$|^s3[.-]")
_S3_WEBSITE = re.compile(r"\.s3-website[.-]")
UNSAFE_SOURCES = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "data:", "http:",
                  "https:", "blob:")


def _behaviors(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    default = props.get("defaultCacheBehavior")
    return [b for b in [default, *as_list(props.get("orderedCacheBehaviors"))] if isinstance(b, Mapping)]


def _viewer_tls(args: ResourceValidationArgs) -> Iterator[str]:
    for behavior in _behaviors(args.props):
        policy = str(behavior.get("viewerProtocolPolicy") or "")
        if policy not in HTTPS_VIEWER_POLICIES:
            yield (f"cache behavior {behavior.get('pathPattern') or 'default'} lets viewers use "
                   f"plain HTTP (viewerProtocolPolicy {policy or 'unset'}); use redirect-to-https")
    certificate = args.props.get("viewerCertificate")
    if truthy(get(certificate, "cloudfrontDefaultCertificate")) or not get(certificate, "acmCertificateArn"):
        yield ("the distribution uses CloudFront's default certificate, which accepts TLS 1.0; "
               "give it an ACM certificate (us-east-1) and a TLSv1.2_2021 minimum")
    else:
        minimum = str(get(certificate, "minimumProtocolVersion") or "")
        if not MODERN_TLS.match(minimum):
            yield f"minimumProtocolVersion {minimum or 'unset'} allows TLS below 1.2; use TLSv1.2_2021"
        if str(get(certificate, "sslSupportMethod") or "") != "sni-only":
            yield "sslSupportMethod is not sni-only"
    for origin in as_list(args.props.get("origins")):
        custom = get(origin, "customOriginConfig")
        if isinstance(custom, Mapping) and not _S3_DOMAIN.search(str(get(origin, "domainName") or "")):
            if str(custom.get("originProtocolPolicy") or "") != "https-only":
                yield f"origin {get(origin, 'originId')} is reached without HTTPS-only"
            old = [p for p in as_list(custom.get("originSslProtocols")) if str(p) != "TLSv1.2"]
            if old:
                yield f"origin {get(origin, 'originId')} allows {', '.join(map(str, old))}"


def _origin_access_control(args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == OAC:
        if str(args.props.get("originAccessControlOriginType") or "") == "s3":
            if str(args.props.get("signingBehavior") or "") != "always":
                yield "origin access control does not sign every request (signingBehavior always)"
            if str(args.props.get("signingProtocol") or "") != "sigv4":
                yield "origin access control does not sign with sigv4"
        return
    for origin in as_list(args.props.get("origins")):
        name = get(origin, "originId")
        if get(origin, "s3OriginConfig", "originAccessIdentity"):
            yield f"origin {name} uses a legacy origin access identity; use origin access control"
            continue
        if get(origin, "originAccessControlId"):
            continue  # signed by OAC: the bucket stays private (the domain need not be known)
        domain = str(get(origin, "domainName") or "")
        if _S3_WEBSITE.search(domain):
            yield (f"origin {name} is an S3 website endpoint, which needs a public bucket; use the "
                   "bucket's regional domain with origin access control")
        elif get(origin, "customOriginConfig") is None or _S3_DOMAIN.search(domain):
            # Not a custom origin (or an S3 bucket behind one): only OAC keeps the bucket private.
            yield (f"origin {name} has no origin access control: an S3 bucket behind it "
                   "would have to be public")


def _directives(csp: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            parsed.setdefault(words[0].lower(), words[1:])
    return parsed


def _csp_problems(csp: str) -> Iterator[str]:
    directives = _directives(csp)
    default = directives.get("default-src")
    if default is None:
        yield "the Content-Security-Policy has no default-src"
    for directive in ("script-src", "style-src", "connect-src", "object-src"):
        sources = directives.get(directive, default or [])
        unsafe = [s for s in sources if s.lower() in UNSAFE_SOURCES or "*" in s]
        if unsafe:
            yield f"{directive} allows {' '.join(unsafe)}: name exact origins ('self', https://host)"
    if directives.get("object-src", default or []) not in (["'none'"],):
        yield "object-src (or default-src) is not 'none'"
    if directives.get("frame-ancestors") != ["'none'"]:
        yield "frame-ancestors is not 'none': the site could be framed (clickjacking)"
    if directives.get("base-uri") not in (["'none'"], ["'self'"]):
        yield "base-uri is not 'none' or 'self'"


def _security_headers(args: ResourceValidationArgs) -> Iterator[str]:
    config = args.props.get("securityHeadersConfig")
    csp = get(config, "contentSecurityPolicy", "contentSecurityPolicy")
    if not isinstance(csp, str) or not csp.strip():
        yield "no Content-Security-Policy"
    else:
        yield from _csp_problems(csp)
        if not truthy(get(config, "contentSecurityPolicy", "override")):
            yield "the Content-Security-Policy does not override the origin's"
    hsts = get(config, "strictTransportSecurity")
    max_age = number(get(hsts, "accessControlMaxAgeSec"))
    if max_age is None or max_age < MIN_HSTS_SECONDS or not truthy(get(hsts, "override")):
        yield f"Strict-Transport-Security is missing or shorter than {MIN_HSTS_SECONDS} s"
    if not truthy(get(config, "contentTypeOptions", "override")):
        yield "X-Content-Type-Options nosniff is not set"
    if str(get(config, "frameOptions", "frameOption") or "") != "DENY":
        yield "X-Frame-Options is not DENY"
    if not get(config, "referrerPolicy", "referrerPolicy"):
        yield "no Referrer-Policy"


def _behaviors_use_headers(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    ours = {str(r.props.get("id")) for r in args.resources
            if r.resource_type == HEADERS_POLICY and r.props.get("id")}
    for distribution in args.resources:
        if distribution.resource_type != DISTRIBUTION:
            continue
        for behavior in _behaviors(distribution.props):
            policy_id = behavior.get("responseHeadersPolicyId")
            if not policy_id or str(policy_id) not in ours:
                yield (f"cache behavior {behavior.get('pathPattern') or 'default'} has no response "
                       "headers policy of this stack (CSP, HSTS, frame denial)", distribution.urn)


def _certificates_serve_distributions(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    """us-east-1 ACM certificates count as global (CloudFront's): that must not hide a use of
    us-east-1 by a stack that does not otherwise run there."""
    regions = {resource_region(r) for r in args.resources} - {None}
    if CLOUDFRONT_CERTIFICATE_REGION in regions:
        return
    used = {str(get(d.props, "viewerCertificate", "acmCertificateArn")) for d in args.resources
            if d.resource_type == DISTRIBUTION}
    for r in args.resources:
        if r.resource_type not in ACM_CERTIFICATE_TYPES or r.props.get("region") != CLOUDFRONT_CERTIFICATE_REGION:
            continue
        arn = r.props.get("arn") if r.resource_type.endswith(":Certificate") else r.props.get("certificateArn")
        if str(arn) not in used:
            yield (f"{r.resource_type} in {CLOUDFRONT_CERTIFICATE_REGION} serves no CloudFront "
                   "distribution of the stack, which does not otherwise run in that region", r.urn)


def _object_content(args: ResourceValidationArgs) -> Iterator[str]:
    content = args.props.get("content")
    if isinstance(content, str):
        shape = secret_shape(content)
        if shape:
            yield f"the object's content holds a secret ({shape}); a served file must hold none"


POLICIES: list[Policy] = [
    resource_guardrail(
        "cloudfront-viewer-tls",
        "CloudFront serves HTTPS only, with an ACM certificate, SNI and TLS 1.2 or later; custom "
        "origins are reached over TLS 1.2",
        ["CKV_AWS_34", "CKV_AWS_174", "Security Hub CloudFront.3", "Security Hub CloudFront.7",
         "Security Hub CloudFront.9", "AWS Config cloudfront-viewer-policy-https"],
        [DISTRIBUTION], _viewer_tls, severity=Severity.HIGH),
    resource_guardrail(
        "cloudfront-s3-origin-access-control",
        "S3 origins are reached only through origin access control that signs every request "
        "(no website endpoint, no legacy OAI)",
        ["Security Hub CloudFront.13", "AWS Config cloudfront-s3-origin-access-control-enabled"],
        [DISTRIBUTION, OAC], _origin_access_control, severity=Severity.HIGH),
    resource_guardrail(
        "cloudfront-security-headers-strict",
        "Response headers policies send a strict CSP (no unsafe or wildcard sources, "
        "frame-ancestors 'none'), HSTS of a year or more, nosniff, DENY framing, a referrer policy",
        ["OWASP Secure Headers", "CKV2_AWS_32"], [HEADERS_POLICY], _security_headers,
        severity=Severity.HIGH),
    stack_guardrail(
        "cloudfront-behaviors-use-security-headers",
        "Every cache behavior of every distribution attaches a response headers policy of the stack",
        ["CKV2_AWS_32"], _behaviors_use_headers, severity=Severity.HIGH),
    stack_guardrail(
        "cloudfront-certificates-only-in-us-east-1-exemption",
        "ACM certificates in us-east-1 of a stack that does not run there serve a distribution",
        ["AWS Organizations SCP region deny (aws:RequestedRegion)"],
        _certificates_serve_distributions, severity=Severity.MEDIUM),
    resource_guardrail(
        "s3-object-content-no-secrets",
        "Objects the stack writes (a site's files, its config.json) hold no secret",
        ["CKV_AWS_46 (secrets in code)"], list(BUCKET_OBJECTS), _object_content,
        severity=Severity.CRITICAL),
]
