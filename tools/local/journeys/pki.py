"""PKI bootstrap: our root and intermediate CA, and the intermediate as the stack's CA.

The run's PKI is made before the stack is evaluated (tools/local/pki_material.py) and the
stack is evaluated with the intermediate as `caCertificatePem`; this journey checks the
result: a proper chain, declared as the stack's CA, registered in every region as declared.
"""

from __future__ import annotations

from cryptography import x509

from components.x509 import is_ca_certificate, is_self_signed
from tools.local.journeys import JourneyRun, journey, short
from tools.local.system import plain

CA_TYPE = "aws:iot/caCertificate:CaCertificate"


def _path_length(certificate: x509.Certificate) -> int | None:
    return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length


def _same_certificate(pem: object, certificate: x509.Certificate) -> bool:
    if not isinstance(pem, str):
        return False
    try:
        return x509.load_pem_x509_certificate(pem.encode()) == certificate
    except ValueError:
        return False


@journey("pki", "PKI bootstrap: root CA -> intermediate CA, registered as the stack's CA",
         order=0)
def pki_bootstrap(run: JourneyRun) -> None:
    system = run.system
    root = system.pki.root.cert
    intermediate = system.pki.intermediate.cert

    with run.step("root CA created: self-signed CA certificate") as step:
        step.check(is_self_signed(root) and is_ca_certificate(root),
                   f"{root.subject.rfc4514_string()}, self-signed, CA, "
                   f"path length {_path_length(root)}")

    with run.step("intermediate CA issued by the root, may issue device certificates only") as step:
        intermediate.verify_directly_issued_by(root)
        step.check(is_ca_certificate(intermediate) and _path_length(intermediate) == 0,
                   f"{intermediate.subject.rfc4514_string()}, signed by the root, "
                   f"path length {_path_length(intermediate)}")

    with run.step("the stack declares the intermediate as its CA in every region") as step:
        # During a CA rotation a region declares two CAs; the intermediate must be one.
        by_region: dict[str, list[str]] = {}
        for resource in system.graph.of_type(CA_TYPE):
            by_region.setdefault(str(resource.region), []).append(
                plain(dict(resource.inputs)).get("caCertificatePem"))
        declared = {region: pems for region, pems in by_region.items()}
        wrong = sorted(region for region, pems in declared.items()
                       if not any(_same_certificate(pem, intermediate) for pem in pems))
        step.check(bool(declared) and not wrong,
                   f"{len(declared)} CA registration(s) declared with the intermediate's PEM",
                   f"regions declaring another CA: {', '.join(wrong)}" if wrong
                   else "no CA registration declared")

    for region in system.regions:
        with run.step("our CA registered in IoT: ACTIVE, auto-registration on, as declared",
                      region=region) as step:
            resources = [r for r in system.declared(CA_TYPE, region) if _same_certificate(
                plain(dict(r.inputs)).get("caCertificatePem"), intermediate)]
            step.check(len(resources) == 1, f"{len(resources)} CA registration(s) of the "
                                            "intermediate declared")
            declared_state = system.state(resources[0])
            runtime_id = system.resolver(resources[0].id)
            described = system.client("iot", region).describe_ca_certificate(
                certificateId=runtime_id)["certificateDescription"]
            same_pem = _same_certificate(described["certificatePem"], intermediate)
            step.check(described["status"] == "ACTIVE" and same_pem
                       and bool(declared_state.get("allowAutoRegistration")),
                       f"CA {short(runtime_id)} {described['status']}, PEM = intermediate: "
                       f"{same_pem}, allowAutoRegistration={declared_state.get('allowAutoRegistration')}, "
                       f"mode {declared_state.get('certificateMode')}")
