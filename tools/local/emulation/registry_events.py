"""AWS IoT registry events, which moto lacks: every accepted change of a thing or of a static
group membership in a region, whoever made it (an operator, a device flow, a replication
function), publishes what AWS IoT publishes to the rules engine of that region, only for the
event types the region's declared `aws:iot/eventConfigurations` turns on; a no-op publishes
nothing. Messages, topics and the less permissive readings: docs/emulation.md, "IoT rules
engine and data plane" (AWS IoT "Registry events":
https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html).

Messages are queued when the registry changes and published outside the moto call (`QueuedPublisher`).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import Any

from moto.iot.models import IoTBackend

from tools.local.emulation import emulation
from tools.local.emulation.publishing import QueuedPublisher
from tools.local.moto_fidelity import wrapping
from tools.local.world import World

EVENT_CONFIGURATIONS = "aws:iot/eventConfigurations:EventConfigurations"


def _description(thing: Any) -> tuple[dict[str, str], str | None]:
    return (dict(thing.attributes or {}),
            thing.thing_type.thing_type_name if thing.thing_type else None)


class RegistryEvents(QueuedPublisher):
    kind = "registry events"

    def __init__(self, world: World) -> None:
        # The registry's clock (epoch ms); scenarios pin it to order changes.
        self.clock: Any = lambda: int(time.time() * 1000)
        self._versions: dict[str, int] = {}
        super().__init__(world, [
            wrapping(IoTBackend, "create_thing", self._create_thing),
            wrapping(IoTBackend, "update_thing", self._update_thing),
            wrapping(IoTBackend, "delete_thing", self._delete_thing),
            wrapping(IoTBackend, "add_thing_to_thing_group", functools.partial(self._membership, True)),
            wrapping(IoTBackend, "remove_thing_from_thing_group", functools.partial(self._membership, False))])

    def enabled(self, region: str, event_type: str) -> bool:
        for declared in self._world.declared(EVENT_CONFIGURATIONS, region):
            state = self._world.state(declared)
            if (state.get("eventConfigurations") or {}).get(event_type) is True:
                return True
        return False

    def _thing_event(self, backend: Any, thing: Any, operation: str) -> None:
        if not self.enabled(backend.region_name, "THING"):
            return
        version = self._versions.get(thing.arn, 0) + 1
        self._versions[thing.arn] = version
        attributes, thing_type = _description(thing)
        self._enqueue(backend.region_name,
                      f"$aws/events/thing/{thing.thing_name}/{operation.lower()}", {
                          "eventType": "THING_EVENT", "eventId": str(uuid.uuid4()),
                          "timestamp": self.clock(), "operation": operation,
                          "accountId": backend.account_id, "thingId": thing.thing_id,
                          "thingName": thing.thing_name, "versionNumber": version,
                          "thingTypeName": thing_type, "attributes": attributes})

    def _create_thing(self, original: Callable[..., Any], backend: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("thing_name", args[0] if args else None)
        existed = any(t.thing_name == name for t in backend.things.values())
        thing = original(backend, *args, **kwargs)
        if not existed:
            self._thing_event(backend, thing, "CREATED")
        return thing

    def _update_thing(self, original: Callable[..., Any], backend: Any, *args: Any, **kwargs: Any) -> Any:
        thing = backend.describe_thing(kwargs.get("thing_name", args[0] if args else None))
        before = _description(thing)
        result = original(backend, *args, **kwargs)
        if _description(thing) != before:
            self._thing_event(backend, thing, "UPDATED")
        return result

    def _delete_thing(self, original: Callable[..., Any], backend: Any, thing_name: str, *args: Any,
                      **kwargs: Any) -> Any:
        thing = backend.describe_thing(thing_name)
        result = original(backend, thing_name, *args, **kwargs)
        # Out of every static group: moto keeps memberships by ARN, so a re-created thing of the
        # name would inherit them (AWS documents no such inheritance; the less permissive reading).
        for group in backend.thing_groups.values():
            group.things.pop(thing.arn, None)
        self._thing_event(backend, thing, "DELETED")
        return result

    def _membership(self, added: bool, original: Callable[..., Any], backend: Any, thing_group_name: str | None,
                    thing_group_arn: str | None, thing_name: str | None, thing_arn: str | None) -> Any:
        group = backend._identify_thing_group(thing_group_name, thing_group_arn)
        thing = backend._identify_thing(thing_name, thing_arn)
        was_member = thing.arn in group.things
        result = original(backend, thing_group_name, thing_group_arn, thing_name, thing_arn)
        if was_member != added and self.enabled(backend.region_name, "THING_GROUP_MEMBERSHIP"):
            operation = "ADDED" if added else "REMOVED"
            self._enqueue(backend.region_name, f"$aws/events/thingGroupMembership/thingGroup/"
                          f"{group.thing_group_name}/thing/{thing.thing_name}/{operation.lower()}", {
                              "eventType": "THING_GROUP_MEMBERSHIP_EVENT", "eventId": str(uuid.uuid4()),
                              "timestamp": self.clock(), "operation": operation,
                              "accountId": backend.account_id, "groupArn": group.arn,
                              "groupId": group.thing_group_id, "thingArn": thing.arn,
                              "thingId": thing.thing_id, "membershipId": str(uuid.uuid4())})
        return result

    def describe(self) -> str:
        return "registry events: thing created/updated/deleted, group membership to the rules engine"


@emulation("registry-events")
def start(world: World) -> RegistryEvents | None:
    return RegistryEvents(world)
