"""Computed outputs of the CVM's resource types (API Gateway, WAFv2, Secrets Manager...): what
the engine would return after the create, in AWS's formats, so the program's ARNs and URLs
(Lambda permission source ARN, WAF association, alias targets) are checkable offline."""

from __future__ import annotations

from typing import Any

from tools.harness import ACCOUNT_ID, PARTITION, RecordedResource, _digest, register_outputs

# API Gateway's hosted zones for regional endpoints (AWS General Reference, "API Gateway
# endpoints"); other regions get a stand-in of the same shape.
API_GATEWAY_REGIONAL_ZONES = {
    "eu-west-1": "ZLY8HYME6SFDD",
    "us-west-2": "Z2OJLYMUO9EFXC",
    "us-east-1": "Z1UJRXOUMOOFQ8",
    "ap-southeast-1": "ZL327KTPIQFUL",
}


def _resource_id(r: RecordedResource) -> str:
    """The id the harness hands the program for `r` (its registration formula)."""
    return f"{r.name}-{_digest(r.urn, length=8)}"


@register_outputs("aws:apigateway/restApi:RestApi")
def rest_api(r: RecordedResource) -> dict[str, Any]:
    api_id = _resource_id(r)
    return {"rootResourceId": _digest(r.urn, "root", length=10),
            "arn": f"arn:{PARTITION}:apigateway:{r.region}::/restapis/{api_id}",
            "executionArn": f"arn:{PARTITION}:execute-api:{r.region}:{ACCOUNT_ID}:{api_id}",
            "createdDate": "2026-01-01T00:00:00Z"}


@register_outputs("aws:apigateway/resource:Resource")
def api_resource(r: RecordedResource) -> dict[str, Any]:
    return {"path": f"/{r.inputs.get('pathPart', '')}"}


@register_outputs("aws:apigateway/stage:Stage")
def stage(r: RecordedResource) -> dict[str, Any]:
    api, name = r.inputs.get("restApi"), r.inputs.get("stageName")
    return {"arn": f"arn:{PARTITION}:apigateway:{r.region}::/restapis/{api}/stages/{name}",
            "executionArn": f"arn:{PARTITION}:execute-api:{r.region}:{ACCOUNT_ID}:{api}/{name}",
            "invokeUrl": f"https://{api}.execute-api.{r.region}.amazonaws.com/{name}"}


@register_outputs("aws:apigateway/domainName:DomainName")
def domain_name(r: RecordedResource) -> dict[str, Any]:
    domain = r.inputs.get("domainName")
    zone = API_GATEWAY_REGIONAL_ZONES.get(str(r.region),
                                          "Z" + _digest(str(r.region), length=12).upper())
    host = f"d-{_digest(r.urn, length=10)}.execute-api.{r.region}.amazonaws.com"
    return {"arn": f"arn:{PARTITION}:apigateway:{r.region}::/domainnames/{domain}",
            "regionalDomainName": host,
            "regionalZoneId": zone}


@register_outputs("aws:wafv2/webAcl:WebAcl")
def web_acl(r: RecordedResource) -> dict[str, Any]:
    acl_id = f"{_digest(r.urn, length=8)}-0000-4000-8000-{_digest(r.urn, length=12)}"
    return {"arn": f"arn:{PARTITION}:wafv2:{r.region}:{ACCOUNT_ID}:regional/webacl/"
                   f"{r.inputs.get('name')}/{acl_id}",
            "capacity": 1000, "lockToken": _digest(r.urn, "lock", length=36)}


@register_outputs("aws:secretsmanager/secret:Secret")
def secret(r: RecordedResource) -> dict[str, Any]:
    # AWS appends a 6-character suffix to every secret ARN.
    return {"arn": f"arn:{PARTITION}:secretsmanager:{r.region}:{ACCOUNT_ID}:secret:"
                   f"{r.inputs.get('name')}-{_digest(r.urn, length=6)}"}

