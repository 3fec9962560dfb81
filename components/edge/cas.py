"""Our device CAs and where each is in its rotation: config key `caCertificates` (plain data
and a parser; `components/config.py` calls it).

    iot-multi-region:caCertificates:
      - name: ca                                # the first CA keeps its resources' names
        pemFile: certs/intermediate-ca.pem
        state: previous                         # devices still carry its certificates
      - name: ca2027
        pemFile: certs/intermediate-ca-2027.pem
        state: issuing                          # new and re-issued devices get this one

A CA's `state` drives its registration in every region (components/edge/README.md, "Rotating
our CA"):

| state | AWS IoT CA status | auto-registration | JITR rule | JITR accepts | replication registers its certificates |
|---|---|---|---|---|---|
| `issuing` | ACTIVE | on | yes | yes | yes |
| `previous` | ACTIVE | on | yes | yes (and moves a device to the issuing CA) | yes |
| `retiring` | ACTIVE | off | no | - | yes |
| `retired` | INACTIVE | off | no | - | no |

Exactly one CA is `issuing`, and at most one other is not `retired` (a rotation overlaps two
CAs). `tools/ca_rotation.py` reports the devices still on a CA and prints the config change
that retires it only when none remain. Without this key, `caCertificatePemFile` (or
`caCertificatePem`) is the one CA, named `ca`, `issuing`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lambdas.contracts.certificates import certificate_id as contract_certificate_id

CaState = Literal["issuing", "previous", "retiring", "retired"]
STATES: tuple[CaState, ...] = ("issuing", "previous", "retiring", "retired")
LEGACY_NAME = "ca"  # the CA of `caCertificatePemFile`: its resources keep their names
_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")


def certificate_id(pem: str) -> str:
    """AWS IoT's id for a certificate (the same in every region and account), as
    DescribeCACertificate and the registered-certificate topic show: the one derivation in
    lambdas/contracts/certificates.py."""
    return contract_certificate_id(pem)


@dataclass(frozen=True)
class DeviceCa:
    name: str
    pem: str
    state: CaState

    @property
    def active(self) -> bool:
        return self.state != "retired"

    @property
    def auto_registration(self) -> bool:
        """Its devices' first connections register them (and start JITR)."""
        return self.state in ("issuing", "previous")

    @property
    def certificate_id(self) -> str:
        return certificate_id(self.pem)


@dataclass(frozen=True)
class DeviceCas:
    cas: tuple[DeviceCa, ...]

    @property
    def issuing(self) -> DeviceCa:
        return next(ca for ca in self.cas if ca.state == "issuing")

    @property
    def previous(self) -> DeviceCa | None:
        """The other CA still registered ACTIVE (previous or retiring), if any."""
        return next((ca for ca in self.cas if ca.state in ("previous", "retiring")), None)

    @property
    def auto_registering(self) -> tuple[DeviceCa, ...]:
        return tuple(ca for ca in self.cas if ca.auto_registration)

    @property
    def accepted_pem(self) -> str:
        """The PEMs JITR's certificate check accepts: every auto-registering CA."""
        return "".join(ca.pem if ca.pem.endswith("\n") else ca.pem + "\n"
                       for ca in self.auto_registering)


def single(pem: str) -> DeviceCas:
    return DeviceCas((DeviceCa(LEGACY_NAME, pem, "issuing"),))


# A CA entry's PEM: (path text or inline, which key, report) -> PEM or None (problem reported).
ReadPem = Callable[[Mapping[str, Any], str, Callable[[str, str], None], bool], str | None]


def parse(raw: Any, read_pem: ReadPem, report: Callable[[str, str], None]) -> DeviceCas | None:
    """The `caCertificates` list (None when absent); `read_pem(entry, where, report,
    may_be_expired)` loads and checks one entry's certificate."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        report("", "must be a list of {name, pemFile | pem, state} (see components/edge/cas.py)")
        return None
    cas: list[DeviceCa] = []
    ok = True
    for index, entry in enumerate(raw):
        where = f"[{index}]"
        if not isinstance(entry, Mapping):
            report(where, "must be a map with name, pemFile (or pem) and state")
            ok = False
            continue
        unknown = sorted(set(entry) - {"name", "pemFile", "pem", "state"})
        if unknown:
            report(where, f"unknown field(s) {', '.join(map(str, unknown))}; use name, pemFile "
                   "(or pem), state")
            ok = False
        name, state = entry.get("name"), entry.get("state")
        if not isinstance(name, str) or not _NAME.match(name):
            report(f"{where}.name", f"{name!r} must be 1-16 lowercase letters and digits, "
                   "starting with a letter (it names the CA's resources; never rename one)")
            ok = False
        if state not in STATES:
            report(f"{where}.state", f"{state!r} is not one of {', '.join(STATES)}")
            ok = False
            continue
        pem = read_pem(entry, where, report, state in ("retiring", "retired"))
        if pem is None or not isinstance(name, str):
            ok = False
            continue
        cas.append(DeviceCa(name, pem, state))
    if not ok:
        return None
    problems = []
    if len({ca.name for ca in cas}) != len(cas):
        problems.append("names must be unique")
    if len({ca.certificate_id for ca in cas}) != len(cas):
        problems.append("the same certificate is listed twice")
    issuing = [ca for ca in cas if ca.state == "issuing"]
    if len(issuing) != 1:
        problems.append(f"exactly one CA must be 'issuing' (found {len(issuing)})")
    others = [ca.name for ca in cas if ca.state in ("previous", "retiring")]
    if len(others) > 1:
        problems.append(f"at most one CA besides the issuing one may be registered ACTIVE "
                        f"(found {', '.join(others)}); retire one first")
    for problem in problems:
        report("", problem)
    return None if problems else DeviceCas(tuple(cas))
