"""The device domain's place in its hosted zone.

`checked_domains`: the device endpoint is a latency CNAME, which cannot sit at the zone
apex, and every other name the stack adds to the zone (the CVM's provisioning domain) must be
inside it. The config parser checks that offline when `hostedZoneName` is configured;
otherwise the program looks the zone up by id at deploy time (preview included) and stops
with one clear error line before anything is created.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components.facts import full_key


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


def require_below_zone(domain: str, zone_name: str, zone_id: str, key: str = "deviceDomain") -> str:
    """`domain`, or a RunError (one line, no traceback) when it is not strictly below the zone."""
    problem = device_domain_zone_problem(domain, zone_name)
    if problem:
        raise pulumi.RunError(f"{full_key(key)}: {problem} (hosted zone {zone_id}, "
                              f"looked up at deploy time; set {full_key('hostedZoneName')} to "
                              "check this offline)")
    return domain


def checked_domains(domains: Mapping[str, str], hosted_zone_id: str,
                    hosted_zone_name: str | None) -> pulumi.Output[Mapping[str, str]]:
    """`domains` (config key -> domain name), once each is known to sit strictly below the
    hosted zone.

    Any output that fails stops the deployment, so the caller only needs to keep it (the
    program exports the device domain through it).
    """
    if hosted_zone_name is not None:  # already checked offline by components/config.py
        return pulumi.Output.from_input(dict(domains))
    zone = aws.route53.get_zone_output(zone_id=hosted_zone_id)
    return zone.name.apply(lambda name: {key: require_below_zone(domain, name, hosted_zone_id, key)
                                         for key, domain in domains.items()})
