"""Route 53 DNS failover and IoT's connection API, as the evacuation of a region meets them: the
declared health checks created in moto's Route 53 and evaluated here (their CloudWatch status one
evaluation late), latency records resolved here (`resolve(name, client_region)`), DeleteConnection
on the region's device endpoint. Behaviours and AWS pages: docs/emulation.md, "DNS failover and
connections".
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from tools.harness import RecordedResource
from tools.local.calls import client_error
from tools.local.emulation import emulation
from tools.local.world import World

HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
RECORD = "aws:route53/record:Record"
# Route 53 is global; its CloudWatch metrics exist only in US East (N. Virginia).
ROUTE53_REGION = "us-east-1"
_CONFIG = {"type": "Type", "childHealthchecks": "ChildHealthChecks", "childHealthThreshold": "HealthThreshold",
           "invertHealthcheck": "Inverted", "disabled": "Disabled", "fqdn": "FullyQualifiedDomainName",
           "port": "Port", "requestInterval": "RequestInterval", "failureThreshold": "FailureThreshold",
           "insufficientDataHealthStatus": "InsufficientDataHealthStatus"}
_INTEGERS = {"HealthThreshold", "Port", "RequestInterval", "FailureThreshold"}


def _region_of(world: World, resource: RecordedResource) -> str:
    """The one region a health check watches (its component's)."""
    served = world.regions_served(resource)
    if len(served) != 1:
        raise ValueError(f"{resource.name}: watches {len(served)} regions, not one")
    return next(iter(served))


def _refusal(world: World, service: str, region: str, code: str, operation: str, message: str) -> Exception:
    """The error AWS's SDK raises: the service's modelled exception class for `code`."""
    plain = client_error(code, operation, message)
    modelled: Any = world.client(service, region).exceptions.from_code(code)
    error: Exception = modelled(plain.response, operation)
    return error


class Dns:
    def __init__(self, world: World) -> None:
        self.world = world
        self.region_of: dict[str, str] = {}  # runtime health check id -> its region
        self.records: list[tuple[str, str, str]] = []  # (name, latency region, runtime check id)
        self.published: dict[str, bool] = {}  # the verdict Route53 last published per check
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        route53 = world.client("route53", ROUTE53_REGION)
        for resource in world.declared(HEALTH_CHECK):  # registered after their children
            state = world.state(resource)
            config: dict[str, Any] = {api: int(state[key]) if api in _INTEGERS else state[key]
                                      for key, api in _CONFIG.items() if state.get(key) not in (None, "")}
            if state.get("cloudwatchAlarmName"):
                config["AlarmIdentifier"] = {"Region": state["cloudwatchAlarmRegion"],
                                             "Name": state["cloudwatchAlarmName"]}
            runtime = route53.create_health_check(CallerReference=resource.name,
                                                  HealthCheckConfig=config)["HealthCheck"]["Id"]
            world.resolver.learn(resource.id, runtime)
            self.region_of[runtime] = str(state.get("cloudwatchAlarmRegion") or _region_of(world, resource))
        for resource in world.declared(RECORD):
            state = world.state(resource)
            for policy in state.get("latencyRoutingPolicies") or []:
                if state.get("healthCheckId"):
                    self.records.append((str(state["name"]), str(policy["region"]), str(state["healthCheckId"])))
        world.calls.answer.update({"GetMetricStatistics": self._metric, "GetHealthCheckStatus": self._status,
                                   "DeleteConnection": self._delete_connection})

    # -- Route 53 --------------------------------------------------------------------------------

    def _check(self, check_id: str) -> Any:
        """The check as Route 53 holds it now (None: no such check), read from moto's store:
        every resolve and status poll evaluates the checks, and through the API that was a
        GetHealthCheck per check, most of the game day's emulation time."""
        from moto.route53.models import route53_backends

        return route53_backends[self.world.account]["global"].health_checks.get(check_id)

    def healthy(self, check_id: str) -> bool:
        """The status Route 53 computes now for a check (runtime id)."""
        check = self._check(check_id)
        if check is None:
            raise _refusal(self.world, "route53", ROUTE53_REGION, "NoSuchHealthCheck", "GetHealthCheck",
                           f"A health check with id {check_id} does not exist.")
        if check.disabled:
            return True  # UpdateHealthCheck, Disabled: "considers the status ... always healthy"
        if check.type_ == "CALCULATED":
            raw = sum(self.healthy(c) for c in check.children or []) >= int(check.health_threshold or 0)
        else:  # an alarm (in its alarm's region) or a TCP probe: healthy while its region is up
            raw = self.region_of.get(check_id) not in self.world.calls.down
        return raw != bool(check.inverted)

    def verdict(self, check_id: str) -> bool:
        """What Route 53 publishes: the previous evaluation's verdict (a change shows one
        evaluation late), then this one's becomes the next."""
        current = self.healthy(check_id)
        with self._lock:
            previous = self.published.get(check_id, current)
            self.published[check_id] = current
        return previous

    def _metric(self, region: str, request: Mapping[str, Any]) -> dict[str, Any] | None:
        if request.get("Namespace") != "AWS/Route53" or request.get("MetricName") != "HealthCheckStatus":
            return None
        dimensions = {d["Name"]: d["Value"] for d in request.get("Dimensions") or []}
        check = dimensions.get("HealthCheckId", "")
        if region != ROUTE53_REGION or check not in self.region_of:
            return {"Label": "HealthCheckStatus", "Datapoints": []}
        value = 1.0 if self.verdict(check) else 0.0
        return {"Label": "HealthCheckStatus", "Datapoints": [
            {"Timestamp": datetime.now(timezone.utc), "Minimum": value, "Unit": "None"}]}

    def _status(self, region: str, request: Mapping[str, Any]) -> dict[str, Any] | None:
        check = self._check(str(request.get("HealthCheckId") or ""))
        if check is not None and check.type_ == "CALCULATED":  # (none: moto answers NoSuchHealthCheck)
            raise _refusal(self.world, "route53", ROUTE53_REGION, "InvalidInput", "GetHealthCheckStatus",
                           "You can't use GetHealthCheckStatus to get the status of a calculated health check")
        return None

    def resolve(self, name: str, client_region: str) -> str:
        """The region whose latency record answers `name` for a client near `client_region`."""
        records = [(region, check) for n, region, check in self.records if n.rstrip(".") == name.rstrip(".")]
        if not records:
            raise LookupError(f"no latency record for {name}")
        healthy = [region for region, check in records if self.verdict(check)]
        candidates = healthy or [region for region, _ in records]  # all unhealthy: fail open
        if client_region in candidates:
            return client_region
        return sorted(candidates, key=lambda r: self.world.regions.index(r) if r in self.world.regions else 99)[0]

    # -- IoT data plane: connections -----------------------------------------------------------

    def _endpoints(self) -> Any:
        from tools.local.emulation.device_endpoint import DeviceEndpoints

        return self.world.emulations.get(DeviceEndpoints)

    def _delete_connection(self, region: str, request: Mapping[str, Any]) -> dict[str, Any] | None:
        client_id = str(request.get("clientId") or "")
        self.calls["DeleteConnection"] = self.calls.get("DeleteConnection", 0) + 1
        endpoints = self._endpoints()
        if endpoints is None or not endpoints.connected(region, client_id):
            raise _refusal(self.world, "iot-data", region, "ResourceNotFoundException", "DeleteConnection",
                           f"client {client_id} is not connected")
        endpoints.disconnect(region, client_id)
        return {}

    def describe(self) -> str:
        return (f"DNS failover: {len(self.region_of)} Route 53 health checks, "
                f"{len(self.records)} latency records; IoT DeleteConnection")

    def stop(self) -> None:
        for operation in ("GetMetricStatistics", "GetHealthCheckStatus", "DeleteConnection"):
            self.world.calls.answer.pop(operation, None)


@emulation("dns")
def start(world: World) -> Dns | None:
    if not world.declared(HEALTH_CHECK):
        return None
    return Dns(world)
