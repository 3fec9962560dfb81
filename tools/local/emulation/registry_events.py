"""AWS IoT registry events, which moto lacks: every accepted change of a thing or of a static
group membership in a region, whoever made it (an operator, a device flow, a replication
function), publishes what AWS IoT publishes, to the rules engine of that region
(AWS IoT "Registry events": https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html):

* thing: `$aws/events/thing/<thing>/created|updated|deleted` with `eventType` THING_EVENT,
  `eventId`, `timestamp` (epoch *milliseconds*), `operation`, `accountId`, `thingId`,
  `thingName`, `versionNumber`, `thingTypeName` (null without a type), `attributes`;
* membership: `$aws/events/thingGroupMembership/thingGroup/<group>/thing/<thing>/added|removed`
  with `eventType` THING_GROUP_MEMBERSHIP_EVENT, `eventId`, `timestamp`, `operation`
  (ADDED|REMOVED), `accountId`, `groupArn`, `groupId`, `thingArn`, `thingId`, `membershipId`.

Stricter than AWS (undocumented there, the less permissive reading here):
* an event type is published only when the stack declares it on in that region's
  `aws:iot/eventConfigurations` (AWS: "not available by default"; a stack that does not
  turn them on gets nothing);
* an add of a thing already in the group, or a remove of a thing not in it, changes nothing
  and publishes nothing (AWS documents no event for a no-op);
* an UpdateThing that changes neither attributes nor type publishes nothing;
* DeleteThing takes the thing out of every static group (moto keeps the memberships by
  ARN, so a re-created thing of the same name would inherit them: AWS documents no such
  inheritance, and keeping a group's policy for a different device is the permissive
  reading); no membership `removed` events are published for it, the `deleted` event is.

Messages are queued when the registry changes and published outside the moto call, by
`publish_pending()` / `settle()` or, with `world.background`, by a thread of its own.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from unittest import mock

from moto.iot.models import IoTBackend

from tools.local.emulation import emulation
from tools.local.emulation.publishing import QueuedPublisher
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
            mock.patch.object(IoTBackend, "create_thing", self._create()),
            mock.patch.object(IoTBackend, "update_thing", self._update()),
            mock.patch.object(IoTBackend, "delete_thing", self._delete()),
            mock.patch.object(IoTBackend, "add_thing_to_thing_group", self._membership(True)),
            mock.patch.object(IoTBackend, "remove_thing_from_thing_group",
                              self._membership(False))])

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

    def _create(self) -> Any:
        original = IoTBackend.create_thing
        events = self

        def create_thing(backend: Any, *args: Any, **kwargs: Any) -> Any:
            name = kwargs.get("thing_name", args[0] if args else None)
            existed = any(t.thing_name == name for t in backend.things.values())
            thing = original(backend, *args, **kwargs)
            if not existed:
                events._thing_event(backend, thing, "CREATED")
            return thing
        return create_thing

    def _update(self) -> Any:
        original = IoTBackend.update_thing
        events = self

        def update_thing(backend: Any, *args: Any, **kwargs: Any) -> Any:
            name = kwargs.get("thing_name", args[0] if args else None)
            thing = backend.describe_thing(name)
            before = _description(thing)
            result = original(backend, *args, **kwargs)
            if _description(thing) != before:
                events._thing_event(backend, thing, "UPDATED")
            return result
        return update_thing

    def _delete(self) -> Any:
        original = IoTBackend.delete_thing
        events = self

        def delete_thing(backend: Any, thing_name: str, *args: Any, **kwargs: Any) -> Any:
            thing = backend.describe_thing(thing_name)
            result = original(backend, thing_name, *args, **kwargs)
            for group in backend.thing_groups.values():
                group.things.pop(thing.arn, None)
            events._thing_event(backend, thing, "DELETED")
            return result
        return delete_thing

    def _membership(self, added: bool) -> Any:
        original = (IoTBackend.add_thing_to_thing_group if added
                    else IoTBackend.remove_thing_from_thing_group)
        events = self

        def change(backend: Any, thing_group_name: str | None, thing_group_arn: str | None,
                   thing_name: str | None, thing_arn: str | None) -> Any:
            group = backend._identify_thing_group(thing_group_name, thing_group_arn)
            thing = backend._identify_thing(thing_name, thing_arn)
            was_member = thing.arn in group.things
            result = original(backend, thing_group_name, thing_group_arn,  # type: ignore[arg-type]
                              thing_name, thing_arn)  # type: ignore[arg-type]
            if was_member != added and events.enabled(backend.region_name,
                                                      "THING_GROUP_MEMBERSHIP"):
                operation = "ADDED" if added else "REMOVED"
                events._enqueue(
                    backend.region_name,
                    f"$aws/events/thingGroupMembership/thingGroup/{group.thing_group_name}"
                    f"/thing/{thing.thing_name}/{operation.lower()}", {
                        "eventType": "THING_GROUP_MEMBERSHIP_EVENT",
                        "eventId": str(uuid.uuid4()), "timestamp": events.clock(),
                        "operation": operation, "accountId": backend.account_id,
                        "groupArn": group.arn, "groupId": group.thing_group_id,
                        "thingArn": thing.arn, "thingId": thing.thing_id,
                        "membershipId": str(uuid.uuid4())})
            return result
        return change

    def describe(self) -> str:
        return "registry events: thing created/updated/deleted, group membership to the rules engine"


@emulation("registry-events")
def start(world: World) -> RegistryEvents | None:
    return RegistryEvents(world)
