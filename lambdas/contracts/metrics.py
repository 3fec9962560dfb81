"""What the functions publish to CloudWatch (embedded metric format, through powertools):
one `Service` per function (namespace, `service` dimension, every metric name it may emit).

The functions take namespace, service and names from here; the components that declare
alarms and dashboards on these metrics (components/cvm/monitoring.py) and the functions'
environments (`POWERTOOLS_*`, lambdas/contracts/environment.py) do too. The tests run each
real handler, read the metrics it printed and refuse any name or namespace not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str  # powertools `service`: the metrics' `service` dimension and the log field
    metrics: frozenset[str]

    @property
    def dimensions(self) -> Mapping[str, str]:
        return {"service": self.name}

    def metric(self, name: str) -> str:
        """`name`, refused if this service does not publish it (a typo never ships)."""
        if name not in self.metrics:
            raise ValueError(f"{self.name} publishes no metric {name!r}; add it to "
                             "lambdas/contracts/metrics.py first")
        return name


# --- JITR certificate check ------------------------------------------------------------------

class Jitr:
    ACCEPTED = "CertificateAccepted"
    REJECTED = "CertificateRejected"
    ERRORED = "CertificateErrored"


JITR_CHECK = Service("IotMultiRegion/Jitr", "jitr-certificate-check",
                     frozenset({Jitr.ACCEPTED, Jitr.REJECTED, Jitr.ERRORED}))


# --- certificate vending machine -------------------------------------------------------------

class Cvm:
    REGISTRATION = "Registration"
    ROTATION = "Rotation"
    ROUTES = (REGISTRATION, ROTATION)
    # HTTP status -> outcome; any other status counts as Errored.
    OUTCOMES: Mapping[int, str] = {200: "Succeeded", 400: "Invalid", 403: "Refused",
                                   409: "Conflict", 503: "Unavailable", 500: "Errored"}
    REQUESTS = "RegistrationRequests"
    ROTATION_REQUESTS = "RotationRequests"
    SUCCEEDED = "RegistrationSucceeded"
    REFUSED = "RegistrationRefused"
    INVALID = "RegistrationInvalid"
    CONFLICT = "RegistrationConflict"
    UNAVAILABLE = "RegistrationUnavailable"
    ERRORED = "RegistrationErrored"
    ROTATION_SUCCEEDED = "RotationSucceeded"
    ATTEMPTS_PER_DEVICE = "AttemptsPerDevice"
    UNDO_FAILED = "UndoFailed"

    @classmethod
    def outcome(cls, route: str, status_code: int) -> str:
        """`<route><outcome>`, e.g. RegistrationConflict for a 409 on /registration."""
        return CVM.metric(f"{route}{cls.OUTCOMES.get(status_code, 'Errored')}")


CVM = Service("IotMultiRegion/Cvm", "cvm-registration", frozenset({
    Cvm.REQUESTS, Cvm.ROTATION_REQUESTS, Cvm.ATTEMPTS_PER_DEVICE, Cvm.UNDO_FAILED,
    *(f"{route}{outcome}" for route in Cvm.ROUTES for outcome in Cvm.OUTCOMES.values())}))


# --- fleet provisioning ----------------------------------------------------------------------

FLEET_NAMESPACE = "IotMultiRegion/FleetProvisioning"


class FleetHook:
    ALLOWED = "ProvisioningAllowed"
    DENIED = "ProvisioningDenied"


FLEET_HOOK = Service(FLEET_NAMESPACE, "fleet-provisioning-hook",
                     frozenset({FleetHook.ALLOWED, FleetHook.DENIED}))


class FleetRecorder:
    RETRIED = "DeviceRetried"
    # recorder outcome -> metric
    OUTCOMES: Mapping[str, str] = {"CREATE": "DeviceCreate", "REVIVE": "DeviceRevive",
                                   "RECORDED": "DeviceRecorded", "CONFLICT": "DeviceConflict",
                                   "UNCONFIRMED": "DeviceUnconfirmed",
                                   "STALE": "DeviceStaleClaim",
                                   "SUPERSEDED": "DeviceSuperseded",
                                   "SHARED_CERTIFICATE": "DeviceSharedCertificate"}

    @classmethod
    def outcome(cls, outcome: str) -> str:
        return FLEET_RECORDER.metric(cls.OUTCOMES.get(outcome, outcome))


FLEET_RECORDER = Service(FLEET_NAMESPACE, "fleet-provisioning-recorder",
                         frozenset({FleetRecorder.RETRIED, *FleetRecorder.OUTCOMES.values()}))


# --- shadow replication ----------------------------------------------------------------------

class ShadowReplication:
    # capture / apply outcome -> metric (lambdas/shadow_replication/logic.py)
    OUTCOMES: Mapping[str, str] = {
        "RECORDED": "ShadowRecorded", "ECHO": "ShadowEchoDropped",
        "SUPERSEDED": "ShadowSuperseded", "LOST_CONVERGED": "ShadowLostConverged",
        "APPLIED": "ShadowApplied", "DELETED": "ShadowDeleted", "IN_SYNC": "ShadowInSync",
        "REASSERTED": "ShadowReasserted", "OWN": "ShadowOwnRecord",
        "OWN_CURRENT": "ShadowOwnRecord", "GONE": "ShadowGone",
        "MALFORMED": "ShadowMalformed",
        # device organisation (lambdas/shadow_replication/organisation.py)
        "ORG_RECORDED": "OrganisationRecorded", "ORG_UNCHANGED": "OrganisationUnchanged",
        "ORG_LOST_CONVERGED": "OrganisationLostConverged", "ORG_ECHO": "OrganisationEcho",
        "ORG_DELETED": "OrganisationDeleted", "ORG_BEFORE_DELETION": "OrganisationBeforeDeletion",
        "ORG_APPLIED_LOG": "OrganisationAppliedLogIgnored",
        "ORG_NOTHING": "OrganisationNothingToRecord", "ORG_PULLED": "OrganisationPulled",
        "ORG_APPLIED": "OrganisationApplied", "ORG_IN_SYNC": "OrganisationInSync",
        "ORG_WAITING": "OrganisationWaitingForThing", "ORG_OWN": "OrganisationOwnRecord",
        "ORG_OWN_CURRENT": "OrganisationOwnRecord", "ORG_GONE": "OrganisationGone",
        "ORG_SUPERSEDED": "OrganisationSuperseded", "ORG_REASSERTED": "OrganisationReasserted"}

    @classmethod
    def outcome(cls, outcome: str) -> str:
        return SHADOW_REPLICATION.metric(cls.OUTCOMES.get(outcome, outcome))


SHADOW_REPLICATION = Service("IotMultiRegion/ShadowReplication", "shadow-replication",
                             frozenset(ShadowReplication.OUTCOMES.values()))

SERVICES: tuple[Service, ...] = (JITR_CHECK, CVM, FLEET_HOOK, FLEET_RECORDER, SHADOW_REPLICATION)
