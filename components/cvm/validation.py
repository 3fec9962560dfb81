"""The CVM's global part: ACM's DNS-validation record for the provisioning domain.

ACM asks for the same CNAME in every region of an account, so the record is declared once,
from the primary region's certificate, by this region-less owner (the capability's
`build_global`); every region's `aws.acm.CertificateValidation` waits for it by name.

It used to be a child of the primary region's CVM, with the region in its logical name: a
change of primary region then created the "new" record (`allow_overwrite`) and deleted the
old resource - the same DNS record - and ACM renewal failed months later. The alias moves the
deployed record here without touching it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cvm.component import CertificateVendingMachine
from components.failover import validation_record


@dataclass(frozen=True)
class ProvisioningDomainValidationArgs:
    domain: str
    hosted_zone_id: str
    # The primary region's CVM: its certificate asks for the record, and the record was its
    # child `<cvm>-domain-validation` before it moved here.
    primary: CertificateVendingMachine


class ProvisioningDomainValidation(pulumi.ComponentResource):
    def __init__(self, name: str, args: ProvisioningDomainValidationArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:cvm:ProvisioningDomainValidation", name, None, opts)
        former = pulumi.Alias(name=f"{args.primary.logical_name}-domain-validation",
                              parent=args.primary)
        self.record = validation_record(
            f"{name}-acm-validation", parent=self, hosted_zone_id=args.hosted_zone_id,
            certificate=args.primary.certificate, domain=args.domain,
            opts=pulumi.ResourceOptions(aliases=[former]))
        self.register_outputs({"validation_record_fqdn": self.record.fqdn})
