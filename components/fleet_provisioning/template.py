"""The fleet-provisioning template body (a plain builder).

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

import json

from components.naming import TEMPLATE_NAME_MAX, template_name

from lambdas.contracts.fleet_allow_list import SERIAL_PARAMETER

CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id"  # filled in by AWS IoT
PAYLOAD_FORMATS = ("json", "cbor")  # the MQTT API answers in either (topic suffix)

__all__ = ["TEMPLATE_NAME_MAX", "template_arn", "template_body", "template_name"]


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
