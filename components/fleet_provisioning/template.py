"""The fleet-provisioning template body and the claim certificate policy (plain builders).

Template (AWS IoT developer guide, "Provisioning templates", fleet provisioning section):
* `SerialNumber` (from the device's RegisterThing parameters, pinned by the hook's
  `parameterOverrides`) is the thing name;
* the certificate is the one the device just obtained over MQTT
  (`CreateKeysAndCertificate`/`CreateCertificateFromCsr`), referenced through the
  `AWS::IoT::Certificate::Id` parameter AWS IoT fills in; fleet templates accept only
  certificate ids;
* the policy is the existing device policy, *by name* (no `PolicyDocument`: the template
  can never grant more than the edge's device policy).
"""

from __future__ import annotations

import hashlib
import json
import re

from lambdas.contracts.fleet_allow_list import SERIAL_PARAMETER

CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id"  # filled in by AWS IoT
PAYLOAD_FORMATS = ("json", "cbor")  # the MQTT API answers in either (topic suffix)
TEMPLATE_NAME_MAX = 36  # CreateProvisioningClaim: templateName 1..36, [0-9A-Za-z_-]+
_TEMPLATE_NAME = re.compile(r"[0-9A-Za-z_-]{1,36}")


def template_name(name_prefix: str) -> str:
    """`<app>-<env>-<region>-fleet`, shortened with a stable hash when longer than 36."""
    name = f"{name_prefix}-fleet"
    if len(name) > TEMPLATE_NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:TEMPLATE_NAME_MAX - 9]}-{digest}"
    if not _TEMPLATE_NAME.fullmatch(name):
        raise ValueError(f"provisioning template name {name!r} is not [0-9A-Za-z_-]{{1,36}}")
    return name


def template_arn(partition: str, region: str, account_id: str, name: str) -> str:
    return f"arn:{partition}:iot:{region}:{account_id}:provisioningtemplate/{name}"


def template_body(device_policy_name: str) -> str:
    return json.dumps({
        "Parameters": {
            SERIAL_PARAMETER: {"Type": "String"},
            CERTIFICATE_ID_PARAMETER: {"Type": "String"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": SERIAL_PARAMETER},
                    "AttributePayload": {"onboarding": "FLEET"},
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {
                    "CertificateId": {"Ref": CERTIFICATE_ID_PARAMETER},
                    "Status": "ACTIVE",
                },
            },
            "policy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {"PolicyName": device_policy_name},
            },
        },
    }, sort_keys=True)


def claim_topics(template: str) -> dict[str, list[str]]:
    """The fleet-provisioning MQTT API topics of one template ("Device provisioning MQTT
    API"): the request topics a claim publishes to and the accepted/rejected replies."""
    requests: list[str] = []
    replies: list[str] = []
    for api in ("$aws/certificates/create", "$aws/certificates/create-from-csr",
                f"$aws/provisioning-templates/{template}/provision"):
        for payload_format in PAYLOAD_FORMATS:
            requests.append(f"{api}/{payload_format}")
            replies += [f"{api}/{payload_format}/accepted", f"{api}/{payload_format}/rejected"]
    return {"requests": requests, "replies": replies}


def claim_policy_document(*, partition: str, region: str, account_id: str, template: str,
                          client_id_prefix: str) -> str:
    """IoT policy of a claim certificate: connect with a `<prefix>*` client id and use only
    this template's provisioning topics; nothing else. A claim belongs to no thing, so the
    thing-name variable cannot bind its client id; the prefix keeps a claim from taking over
    (disconnecting) a provisioned device, whose client id is its thing name."""
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    topics = claim_topics(template)
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ConnectWithProvisioningClientId", "Effect": "Allow", "Action": "iot:Connect",
         "Resource": f"{iot}:client/{client_id_prefix}*"},
        {"Sid": "PublishProvisioningRequests", "Effect": "Allow", "Action": "iot:Publish",
         "Resource": [f"{iot}:topic/{t}" for t in topics["requests"]]},
        {"Sid": "SubscribeProvisioningReplies", "Effect": "Allow", "Action": "iot:Subscribe",
         "Resource": [f"{iot}:topicfilter/{t}" for t in topics["replies"]]},
        {"Sid": "ReceiveProvisioningReplies", "Effect": "Allow", "Action": "iot:Receive",
         "Resource": [f"{iot}:topic/{t}" for t in topics["replies"]]},
    ]}, sort_keys=True)

