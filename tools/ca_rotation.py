"""Rotating our device CA: which devices still carry a certificate of an old CA, and the
retirement of that CA - only when none remain.

    python -m tools.ca_rotation report dev                  # every CA but the issuing one
    python -m tools.ca_rotation report prod --ca ca --json
    python -m tools.ca_rotation retire prod --ca ca         # refuses while devices remain

A device is *on* a CA while the inventory item of its thing names a certificate of that CA
(`issuer` OWN_CA, `caCertificateId` = the CA's id, status ACTIVE or INACTIVE); the registry of
each region is checked too (ListCertificatesByCA: certificates of that CA still ACTIVE or
PENDING_ACTIVATION), because a certificate the inventory forgot can still connect. Every
region is read in its own region, from its own replica.

`retire` moves a CA one step: `previous` -> `retiring` (auto-registration off) -> `retired`
(INACTIVE). The stack config holds the state (components/edge/cas.py), so the tool changes
nothing in AWS: it checks every region and prints the `pulumi config set` line of the next
step, then `pulumi up` applies it. Steps in components/edge/README.md, "Rotating our CA".

Exit status: 0 no device on the CA(s) (for retire: the next step is printed), 1 devices
remain (retire refused), 2 bad arguments or stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tools.aws_clients import ClientFactory, boto3_clients

PROJECT_DIR = Path(__file__).resolve().parent.parent
NEXT_STATE = {"previous": "retiring", "retiring": "retired"}
ON_CA_STATUSES = ("ACTIVE", "INACTIVE")
USABLE_REGISTRY_STATUSES = ("ACTIVE", "PENDING_ACTIVATION")


@dataclass
class CaInRegion:
    region: str
    ca: str  # the CA's name in the stack config
    ca_id: str
    things: list[str] = field(default_factory=list)  # inventory items still on the CA
    usable_certificates: list[str] = field(default_factory=list)  # registry, ACTIVE/PENDING

    @property
    def remaining(self) -> int:
        return len(self.things) + len(self.usable_certificates)


def things_on_ca(dynamodb: Any, table: str, ca_id: str) -> Iterator[str]:
    """Things whose inventory item names a certificate of the CA (eventually consistent scan;
    the projection leaves the PEMs in the table)."""
    kwargs: dict[str, Any] = {
        "TableName": table, "ProjectionExpression": "thingName",
        "FilterExpression": "issuer = :own AND caCertificateId = :ca AND #s IN (:a, :i)",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":own": {"S": "OWN_CA"}, ":ca": {"S": ca_id},
                                      ":a": {"S": ON_CA_STATUSES[0]},
                                      ":i": {"S": ON_CA_STATUSES[1]}}}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            yield str(item["thingName"]["S"])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def usable_certificates_of_ca(iot: Any, ca_id: str) -> Iterator[str]:
    kwargs: dict[str, Any] = {"caCertificateId": ca_id, "pageSize": 250}
    while True:
        try:
            page = iot.list_certificates_by_ca(**kwargs)
        except iot.exceptions.ResourceNotFoundException:
            return  # the CA is not registered in this region
        for certificate in page.get("certificates", []):
            if certificate.get("status") in USABLE_REGISTRY_STATUSES:
                yield str(certificate["certificateId"])
        if not page.get("nextMarker"):
            return
        kwargs["marker"] = page["nextMarker"]


@dataclass(frozen=True)
class Stack:
    regions: tuple[str, ...]
    inventory_table: str
    cas: Any  # components.edge.cas.DeviceCas


def load_stack(program: Path, stack: str) -> Stack:
    from components.capabilities import CAPABILITIES
    from components.config import PROJECT, parse_stack_config
    from components.naming import INVENTORY_TABLE
    from tools.harness import load_program_stack

    spec = load_program_stack(program, stack)
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix):]: v for k, v in spec.config.items() if k.startswith(prefix)}
    config = parse_stack_config(raw, capabilities=CAPABILITIES, project_dir=program)
    return Stack(config.regions, config.names.table(INVENTORY_TABLE), config.device_cas)


def survey(stack: Stack, ca_names: list[str], clients: ClientFactory) -> list[CaInRegion]:
    found = []
    for region in stack.regions:
        for ca in stack.cas.cas:
            if ca.name not in ca_names:
                continue
            entry = CaInRegion(region, ca.name, ca.certificate_id)
            entry.things = sorted(things_on_ca(clients("dynamodb", region),
                                               stack.inventory_table, ca.certificate_id))
            entry.usable_certificates = sorted(usable_certificates_of_ca(
                clients("iot", region), ca.certificate_id))
            found.append(entry)
    return found


def render(entries: list[CaInRegion], out: TextIO, examples: int = 5) -> None:
    for e in entries:
        state = "none left" if e.remaining == 0 else (
            f"{len(e.things)} device(s) in the inventory, {len(e.usable_certificates)} usable "
            "certificate(s) in the registry")
        print(f"{e.region}  CA {e.ca} ({e.ca_id[:12]}…): {state}", file=out)
        for thing in e.things[:examples]:
            print(f"    {thing}", file=out)
        if len(e.things) > examples:
            print(f"    … and {len(e.things) - examples} more (--json lists all)", file=out)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
         clients: ClientFactory | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ca_rotation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("report", "retire"))
    parser.add_argument("stack", help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--ca", action="append", default=None,
                        help="a CA's name in caCertificates (report: repeatable, default every "
                             "CA but the issuing one; retire: exactly one)")
    parser.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    parser.add_argument("--program", type=Path, default=PROJECT_DIR)
    parser.add_argument("--profile", default=None, help="AWS profile")
    args = parser.parse_args(argv)
    from components.config import ConfigError
    from tools.harness import StackFileError

    try:
        stack = load_stack(args.program, args.stack)
    except (StackFileError, ConfigError) as error:
        print(f"error: {error}", file=err)
        return 2
    by_name = {ca.name: ca for ca in stack.cas.cas}
    names = args.ca or [ca.name for ca in stack.cas.cas if ca.state != "issuing"]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        print(f"error: no CA named {', '.join(unknown)} in caCertificates (known: "
              f"{', '.join(by_name)})", file=err)
        return 2
    if args.command == "retire":
        if len(names) != 1:
            print("error: retire takes exactly one --ca", file=err)
            return 2
        ca = by_name[names[0]]
        if ca.state not in NEXT_STATE:
            reason = ("it is the issuing CA: add a new CA as issuing first (tools.pki "
                      "intermediate-ca), make this one previous" if ca.state == "issuing"
                      else "it is already retired")
            print(f"error: CA {ca.name} cannot be retired further: {reason}", file=err)
            return 2
    if not names:
        print(f"stack {args.stack} has only its issuing CA ({', '.join(by_name)}): no rotation "
              "in progress, nothing to report", file=out)
        return 0
    from tools.aws_errors import AWS_ERRORS, describe

    try:
        entries = survey(stack, names, clients or boto3_clients(args.profile))
    except AWS_ERRORS as error:
        print(f"error: {describe(error)}", file=err)
        return 2
    if args.json:
        json.dump([e.__dict__ | {"remaining": e.remaining} for e in entries], out, indent=2)
        out.write("\n")
    else:
        render(entries, out)
    remaining = sum(e.remaining for e in entries)
    if args.command == "report":
        return 1 if remaining else 0
    ca = by_name[names[0]]
    if remaining:
        print(f"refused: {remaining} device(s) or certificate(s) still on CA {ca.name}; re-issue "
              "them under the issuing CA first (components/edge/README.md)", file=err)
        return 1
    index = stack.cas.cas.index(ca)
    step = NEXT_STATE[ca.state]
    print(f"no device is on CA {ca.name} in any region; next step ({ca.state} -> {step}):\n"
          f"  pulumi config set --stack {args.stack} --path 'iot-multi-region:caCertificates"
          f"[{index}].state' {step} && pulumi up --stack {args.stack}", file=err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
