"""The device edge's global part: ACM's DNS-validation record for the device domain.

ACM asks for the same CNAME in every region of an account, so the record is declared once,
from the primary region's certificate, by this region-less owner; each region's
`aws.acm.CertificateValidation` (components/failover.py) waits for it by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.failover import validation_record


@dataclass(frozen=True)
class DeviceDomainValidationArgs:
    domain: str
    hosted_zone_id: str
    # The primary region's ACM certificate for `domain`.
    certificate: aws.acm.Certificate


class DeviceDomainValidation(pulumi.ComponentResource):
    """ACM's DNS-validation record for the device domain, shared by all regions."""

    def __init__(self, name: str, args: DeviceDomainValidationArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:edge:DeviceDomainValidation", name, None, opts)
        self.record = validation_record(
            f"{name}-acm-validation", parent=self, hosted_zone_id=args.hosted_zone_id,
            certificate=args.certificate, domain=args.domain)
        self.register_outputs({"validation_record_fqdn": self.record.fqdn})
