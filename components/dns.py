"""The device domain's place in its hosted zone, and its one global DNS record: ACM's
DNS-validation CNAME.

`checked_device_domain`: the device endpoint is a latency CNAME, which cannot sit at the
zone apex. The config parser checks that offline when `hostedZoneName` is configured;
otherwise the program looks the zone up by id at deploy time (preview included) and stops
with one clear error line before anything is created.

ACM gives a domain the same validation CNAME (name and value) in every region of one
account, so one record validates (and keeps renewing) the device-domain certificate of
every region. It is created once, here, from the primary region's certificate; each
region's `aws.acm.CertificateValidation` waits for it by name. One owner per Route53
record means regions never overwrite or delete each other's validation record, and the
logical name does not mention a region, so changing the primary region is a no-op for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.facts import full_key

# ACM re-checks the record at every renewal; it never changes, so a long TTL is fine.
VALIDATION_RECORD_TTL = 300


def device_domain_zone_problem(domain: str, zone_name: str) -> str | None:
    """Why `domain` cannot be the device endpoint inside hosted zone `zone_name` (checked
    offline by components/config.py when the zone's name is configured, else at deploy time).

    The endpoint is a latency CNAME, and a CNAME cannot sit at a zone apex: the domain
    must be strictly below the zone.
    """
    domain = domain.lower().rstrip(".")
    zone = zone_name.lower().rstrip(".")
    if domain == zone:
        return (f"{domain!r} is the apex of hosted zone {zone!r}; a CNAME record cannot sit "
                f"at a zone apex - use a name below it, e.g. iot.{zone}")
    if not domain.endswith("." + zone):
        return (f"{domain!r} is not inside hosted zone {zone!r}; use a name ending in "
                f".{zone}, or the id of the zone that holds {domain!r}")
    return None


def require_below_zone(domain: str, zone_name: str, zone_id: str) -> str:
    """`domain`, or a RunError (one line, no traceback) when it is not strictly below the zone."""
    problem = device_domain_zone_problem(domain, zone_name)
    if problem:
        raise pulumi.RunError(f"{full_key('deviceDomain')}: {problem} (hosted zone {zone_id}, "
                              f"looked up at deploy time; set {full_key('hostedZoneName')} to "
                              "check this offline)")
    return domain


def checked_device_domain(domain: str, hosted_zone_id: str,
                          hosted_zone_name: str | None) -> pulumi.Output[str]:
    """The device domain, once known to sit strictly below its hosted zone.

    Any output that fails stops the deployment, so the caller only needs to keep it (the
    program exports it).
    """
    if hosted_zone_name is not None:  # already checked offline by components/config.py
        return pulumi.Output.from_input(domain)
    zone = aws.route53.get_zone_output(zone_id=hosted_zone_id)
    return zone.name.apply(lambda name: require_below_zone(domain, name, hosted_zone_id))


@dataclass(frozen=True)
class DnsValidationRecord:
    name: str
    type: str
    value: str


def validation_record_for(options: Sequence[aws.acm.outputs.CertificateDomainValidationOption],
                          domain: str) -> DnsValidationRecord:
    """The validation record ACM asks for `domain` (raises if ACM did not ask for one)."""
    for option in options:
        if (option.domain_name or "").rstrip(".").lower() == domain:
            if not (option.resource_record_name and option.resource_record_type
                    and option.resource_record_value):
                raise ValueError(f"ACM returned an incomplete DNS validation option for "
                                 f"{domain!r}")
            return DnsValidationRecord(option.resource_record_name, option.resource_record_type,
                                       option.resource_record_value)
    raise ValueError(f"ACM returned no DNS validation option for {domain!r}")


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
        record = args.certificate.domain_validation_options.apply(
            lambda options: validation_record_for(options, args.domain))
        self.record = aws.route53.Record(
            f"{name}-acm-validation",
            zone_id=args.hosted_zone_id,
            name=record.apply(lambda r: r.name),
            type=record.apply(lambda r: r.type),
            records=[record.apply(lambda r: r.value)],
            ttl=VALIDATION_RECORD_TTL,
            # The record is deterministic per account and domain: if an earlier, manual
            # validation left the identical record behind, take it over instead of failing.
            allow_overwrite=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"validation_record_fqdn": self.record.fqdn})
