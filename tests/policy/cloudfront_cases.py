"""Passing and failing cases of the CloudFront guardrails (policy/guardrails/cloudfront.py), in
the shape tests/policy/test_guardrails.py runs for every guardrail of the pack."""

from __future__ import annotations

from typing import Any

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
HEADERS = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
CERTIFICATE = "aws:acm/certificate:Certificate"
KEY = "aws:kms/key:Key"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/abc"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self' https://cognito-idp.eu-west-1.amazonaws.com; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'; object-src 'none'")
BEHAVIOR = {"targetOriginId": "site", "viewerProtocolPolicy": "redirect-to-https",
            "responseHeadersPolicyId": "headers-1"}
GOOD_DISTRIBUTION: dict[str, Any] = {
    "origins": [{"originId": "site", "domainName": "b.s3.eu-west-1.amazonaws.com",
                 "originAccessControlId": "oac-1"}],
    "defaultCacheBehavior": BEHAVIOR,
    "viewerCertificate": {"acmCertificateArn": CERT_ARN, "sslSupportMethod": "sni-only",
                          "minimumProtocolVersion": "TLSv1.2_2021"},
}
GOOD_HEADERS: dict[str, Any] = {"id": "headers-1", "securityHeadersConfig": {
    "contentSecurityPolicy": {"contentSecurityPolicy": CSP, "override": True},
    "strictTransportSecurity": {"accessControlMaxAgeSec": 63072000, "includeSubdomains": True,
                                "override": True},
    "contentTypeOptions": {"override": True},
    "frameOptions": {"frameOption": "DENY", "override": True},
    "referrerPolicy": {"referrerPolicy": "no-referrer", "override": True},
}}


def distribution(**changes: Any) -> dict[str, Any]:
    return {**GOOD_DISTRIBUTION, **changes}


def headers(**security: Any) -> dict[str, Any]:
    return {"id": "headers-1", "securityHeadersConfig": {**GOOD_HEADERS["securityHeadersConfig"],
                                                         **security}}


def csp(text: str) -> dict[str, Any]:
    return headers(contentSecurityPolicy={"contentSecurityPolicy": text, "override": True})


RESOURCE_CASES: list[tuple[str, str, dict[str, Any] | None, list[tuple[dict[str, Any], str]], Any]] = [
    ("cloudfront-viewer-tls", DISTRIBUTION, GOOD_DISTRIBUTION, [
        (distribution(defaultCacheBehavior={**BEHAVIOR, "viewerProtocolPolicy": "allow-all"}), "plain HTTP"),
        (distribution(viewerCertificate={"cloudfrontDefaultCertificate": True}), "default certificate"),
        (distribution(viewerCertificate={**GOOD_DISTRIBUTION["viewerCertificate"],
                                         "minimumProtocolVersion": "TLSv1_2016"}), "below 1.2"),
        (distribution(origins=[{"originId": "api", "domainName": "api.example.com",
                                "customOriginConfig": {"originProtocolPolicy": "match-viewer",
                                                       "originSslProtocols": ["TLSv1.2"]}}]),
         "without HTTPS-only"),
    ], None),
    ("cloudfront-s3-origin-access-control", DISTRIBUTION, GOOD_DISTRIBUTION, [
        (distribution(origins=[{"originId": "site", "domainName": "b.s3.eu-west-1.amazonaws.com"}]),
         "no origin access control"),
        (distribution(origins=[{"originId": "site", "domainName": "b.s3.eu-west-1.amazonaws.com",
                                "s3OriginConfig": {"originAccessIdentity": "origin-access-identity/cloudfront/E1"}}]),
         "legacy origin access identity"),
        (distribution(origins=[{"originId": "site", "domainName": "b.s3-website-eu-west-1.amazonaws.com",
                                "customOriginConfig": {"originProtocolPolicy": "http-only"}}]),
         "website endpoint"),
        (distribution(origins=[{"originId": "site"}]), "no origin access control"),
    ], None),
    ("cloudfront-s3-origin-access-control", OAC,
     {"originAccessControlOriginType": "s3", "signingBehavior": "always", "signingProtocol": "sigv4"},
     [({"originAccessControlOriginType": "s3", "signingBehavior": "no-override",
        "signingProtocol": "sigv4"}, "signingBehavior always")], None),
    ("cloudfront-security-headers-strict", HEADERS, GOOD_HEADERS, [
        (csp(CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")), "'unsafe-inline'"),
        (csp(CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")), "frame-ancestors"),
        (csp(CSP.replace("https://cognito-idp.eu-west-1.amazonaws.com", "https://*.amazonaws.com")),
         "connect-src allows"),
        (csp(CSP.replace("default-src 'none'; ", "")), "no default-src"),
        (headers(strictTransportSecurity={"accessControlMaxAgeSec": 300, "override": True}),
         "Strict-Transport-Security"),
        (headers(frameOptions={"frameOption": "SAMEORIGIN", "override": True}), "DENY"),
        ({"id": "headers-1", "securityHeadersConfig": {}}, "no Content-Security-Policy"),
    ], None),
    ("s3-object-content-no-secrets", OBJECT, {"key": "config.json", "content": '{"region": "eu-west-1"}'}, [
        ({"key": "config.json", "content": '{"key": "-----BEGIN PRIVATE KEY-----\\nMII"}'}, "PEM private key"),
        ({"key": "config.json", "content": '{"id": "AKIAABCDEFGHIJKLMNOP"}'}, "AWS access key id"),
    ], None),
]

STACK_CASES: list[tuple[str, list[Any], list[tuple[list[Any], str]], Any]] = [
    ("cloudfront-behaviors-use-security-headers",
     [(DISTRIBUTION, GOOD_DISTRIBUTION), (HEADERS, GOOD_HEADERS)],
     [([(DISTRIBUTION, GOOD_DISTRIBUTION)], "no response headers policy"),
      ([(DISTRIBUTION, distribution(orderedCacheBehaviors=[{**BEHAVIOR, "pathPattern": "/api/*",
                                                            "responseHeadersPolicyId": None}])),
        (HEADERS, GOOD_HEADERS)], "/api/*")], None),
    ("cloudfront-certificates-only-in-us-east-1-exemption",
     [(CERTIFICATE, {"region": "us-east-1", "arn": CERT_ARN}), (DISTRIBUTION, GOOD_DISTRIBUTION),
      (KEY, {"region": "eu-west-1"})],
     [([(CERTIFICATE, {"region": "us-east-1", "arn": CERT_ARN + "-other"}),
        (DISTRIBUTION, GOOD_DISTRIBUTION), (KEY, {"region": "eu-west-1"})], "serves no CloudFront")],
     None),
    # A stack that runs in us-east-1 anyway may keep other certificates there.
    ("cloudfront-certificates-only-in-us-east-1-exemption",
     [(CERTIFICATE, {"region": "us-east-1", "arn": CERT_ARN + "-iot"}), (KEY, {"region": "us-east-1"})],
     [], None),
]
