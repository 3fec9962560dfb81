"""Shadow replication: a device's classic and named shadows follow it to every region.

Steps (the tests call them too): an update or a delete of a shadow in one region, as a device
or an application makes it (iot-data in that region); what a region's shadow holds; what the
device-data table's record says. What the journey checks: docs/local-run.md, "Journeys and
wires". Wire: the capture rules may not invoke the function (its permissions name other rules).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from lambdas.contracts import organisation as org
from lambdas.contracts.shadows import Attr, partition_key, sort_key
from tools.harness import StackGraph
from tools.local.emulation.rules_engine import Delivery, RulesEngine
from tools.local.graph_edit import with_each
from tools.local.journeys import JourneyRun, journey, shown, wire
from tools.local.journeys import registry as seen
from tools.local.world import World

CAPABILITY = "shadow_replication"
DEVICE_DATA = "device-data"  # the program's export key of the table
T = TypeVar("T")


def _name(shadow: str) -> dict[str, str]:
    return {"shadowName": shadow} if shadow else {}


def ensure_thing(world: World, region: str, thing: str) -> None:
    iot = world.client("iot", region)
    with contextlib.suppress(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing(thingName=thing)


def update(world: World, region: str, thing: str, state: dict[str, Any], shadow: str = "",
           client_token: str | None = None) -> int:
    """UpdateThingShadow in `region` as a device or an application; the new version."""
    payload: dict[str, Any] = {"state": state}
    if client_token is not None:
        payload["clientToken"] = client_token
    answer = world.client("iot-data", region).update_thing_shadow(
        thingName=thing, payload=json.dumps(payload, ensure_ascii=False).encode(), **_name(shadow))
    return int(json.loads(answer["payload"].read())["version"])


def delete(world: World, region: str, thing: str, shadow: str = "") -> None:
    world.client("iot-data", region).delete_thing_shadow(thingName=thing, **_name(shadow))


def state(world: World, region: str, thing: str, shadow: str = "") -> dict[str, Any] | None:
    """The shadow's desired and reported state in `region`; None when it has none."""
    iot_data = world.client("iot-data", region)
    try:
        answer = iot_data.get_thing_shadow(thingName=thing, **_name(shadow))
    except iot_data.exceptions.ResourceNotFoundException:
        return None
    document = json.loads(answer["payload"].read()).get("state") or {}
    return {k: v for k, v in document.items() if k in ("desired", "reported")}


def _device_data(world: World, region: str, key: dict[str, str]) -> dict[str, Any] | None:
    """An item of `region`'s replica of the device-data table (plain values)."""
    item = world.resource("dynamodb", region).Table(world.table(DEVICE_DATA)).get_item(
        Key=key, ConsistentRead=True).get("Item")
    return None if item is None else dict(item)


def record(world: World, region: str, thing: str, shadow: str = "") -> dict[str, Any] | None:
    """The shadow's record in `region`'s replica of the device-data table."""
    return _device_data(world, region, {Attr.PK: partition_key(thing), Attr.SK: sort_key(shadow)})


# --- device organisation (attributes, thing type, static groups) ------------------------------

def ensure_group(world: World, region: str, group: str) -> None:
    """A static thing group (the stack declares the fleet's groups in every region)."""
    iot = world.client("iot", region)
    with contextlib.suppress(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing_group(thingGroupName=group)


def ensure_thing_type(world: World, region: str, thing_type: str) -> None:
    iot = world.client("iot", region)
    with contextlib.suppress(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing_type(thingTypeName=thing_type)


def describe(world: World, region: str, thing: str, attributes: dict[str, str],
             thing_type: str | None = None) -> None:
    """UpdateThing in `region` as an operator does: exactly these attributes (and type)."""
    kwargs: dict[str, Any] = {"thingName": thing, "attributePayload": {
        "attributes": attributes, "merge": False}}
    if thing_type:
        kwargs["thingTypeName"] = thing_type
    world.client("iot", region).update_thing(**kwargs)


def join(world: World, region: str, thing: str, group: str) -> None:
    world.client("iot", region).add_thing_to_thing_group(thingName=thing, thingGroupName=group)


def leave(world: World, region: str, thing: str, group: str) -> None:
    world.client("iot", region).remove_thing_from_thing_group(thingName=thing,
                                                               thingGroupName=group)


def organisation(world: World, region: str, thing: str) -> dict[str, Any] | None:
    """What `region`'s registry says: attributes, thing type, groups; None without the thing."""
    iot = world.client("iot", region)
    try:
        found = iot.describe_thing(thingName=thing)
    except iot.exceptions.ResourceNotFoundException:
        return None
    groups = sorted(g["groupName"] for g in
                    iot.list_thing_groups_for_thing(thingName=thing).get("thingGroups", []))
    return {"attributes": dict(found.get("attributes") or {}),
            "thingType": found.get("thingTypeName") or "", "groups": groups}


def organisation_record(world: World, region: str, thing: str) -> dict[str, Any] | None:
    """The thing's organisation record in `region`'s replica of the device-data table."""
    return _device_data(world, region, {org.Attr.PK: partition_key(thing), org.Attr.SK: org.SORT_KEY})


@dataclass
class Arrival:
    """Waits for a change to `thing` made in one region to be found in another, stopping early
    once a rule action failed for a message about the thing (since this object was made): AWS
    IoT does not retry a failed action, it runs the rule's error action, so that change is
    never captured and waiting longer cannot help."""

    world: World
    thing: str
    since: int = field(init=False)

    def __post_init__(self) -> None:
        self.since = len(self._deliveries())

    def _deliveries(self) -> list[Delivery]:
        return self.world.emulation(RulesEngine).deliveries if RulesEngine in self.world.emulations else []

    def failed(self) -> list[Delivery]:
        return [d for d in self._deliveries()[self.since:] if not d.ok and self.thing in d.topic.split("/")]

    def wait(self, probe: Callable[[], T], done: Callable[[T], bool]) -> tuple[T, str]:
        """(the last value; "" or, when it stopped without `done`, the failed actions)."""
        value = seen.wait_for(probe, lambda v: done(v) or bool(self.failed()),
                              timeout=self.world.converge_seconds, world=self.world)
        failed = [] if done(value) else self.failed()
        return value, "".join(f"; rule {d.rule} -> {d.action} on {d.topic} failed: {d.detail}" for d in failed[:2])


def organisation_replicates(run: JourneyRun, a: str, b: str, thing: str) -> None:
    """Steps: attributes and a group set in `a` are found in `b`; a group left in `b` is left
    in `a`; nothing echoes (one record write per change)."""
    world = run.world
    declared = sorted({str(world.state(g)["name"]): str(world.state(g).get("parentGroupName") or "")
                       for g in world.declared("aws:iot/thingGroup:ThingGroup", a)}.items())
    # Two groups of different hierarchies (a thing joins one group per hierarchy): the
    # stack's declared roots, else two of the journey's own.
    roots = [name for name, parent in declared if not parent][:2]
    group, other = (roots + ["journey-sensors", "journey-floor-2"][len(roots):])[:2]
    with run.step(f"the fleet's groups {group} and {other} exist in {a} and {b}",
                  region=a) as step:
        for region in (a, b):
            for name in (group, other):
                ensure_group(world, region, name)
        found = {r: sorted(g["groupName"] for g in world.client("iot", r).list_thing_groups()
                           ["thingGroups"] if g["groupName"] in (group, other)) for r in (a, b)}
        step.check(all(v == sorted((group, other)) for v in found.values()), f"groups: {shown(found)}")
    attributes = {"site": "lisbon", "model": "m2"}
    expected: dict[str, Any] = {"attributes": attributes, "thingType": "",
                                "groups": sorted((group, other))}
    arrival = Arrival(world, thing)
    with run.step(f"an operator sets {thing}'s attributes and groups in {a}", region=a) as step:
        describe(world, a, thing, attributes)
        join(world, a, thing, group)
        join(world, a, thing, other)
        step.check(organisation(world, a, thing) == expected,
                   f"{a}: {shown(organisation(world, a, thing))}")
    seen_in: Callable[[str], Callable[[], Any]] = \
        lambda region: partial(organisation, world, region, thing)
    with run.step(f"{b} finds the attributes and the groups", region=b) as step:
        found, why = arrival.wait(seen_in(b), lambda o: o == expected)
        step.check(found == expected, f"{b}: {shown(found)}{why}")
    with run.step(f"{thing} leaves {other} in {b}; {a} sees it leave", region=a) as step:
        leave(world, b, thing, other)
        found, why = arrival.wait(seen_in(a), lambda o: o is not None and o["groups"] == [group])
        step.check(found is not None and found["groups"] == [group], f"{a}: {shown(found)}{why}")
    with run.step("nothing echoed: the record was written once per change", region=a) as step:
        world.settle()
        records = {r: organisation_record(world, r, thing) or {} for r in (a, b)}
        versions = {r: (rec.get(org.Attr.VERSION), rec.get(org.Attr.WRITER_REGION))
                    for r, rec in records.items()}
        # describe + 2 joins in a, 1 leave in b: 4 writes, the last by b.
        step.check(all(v == (4, b) for v in versions.values()), f"records: {shown({r: f'version {v[0]} by {v[1]}' for r, v in versions.items()})}")


@journey("shadow-replication", "Device state: classic and named shadows, attributes and "
         "static groups written in one region are found in the others; deletes and removals "
         "replicate; nothing echoes", capability=CAPABILITY,
         order=45, beside_background=True)
def shadow_replication(run: JourneyRun) -> None:
    world = run.world
    regions = run.regions_with(CAPABILITY, "shadow replication")
    if len(regions) < 2:
        run.skipped("shadow replication", reason=f"needs two regions with {CAPABILITY}")
        return
    a, b = regions[0], regions[1]
    thing = "shadow-journey-1"
    with run.step(f"{thing} exists in {a} and {b} (the registry's replication's work)",
                  region=a) as step:
        for region in (a, b):
            ensure_thing(world, region, thing)
        step.check(all(seen.thing_exists(world, r, thing) for r in (a, b)), "thing in both")
    wanted_a = {"reported": {"firmware": "1.0", "temperature": 21}}
    arrival = Arrival(world, thing)
    with run.step(f"the device reports its classic shadow in {a}", region=a) as step:
        update(world, a, thing, wanted_a)
        step.check(state(world, a, thing) == wanted_a, f"{a}: {json.dumps(state(world, a, thing), default=str)}")
    with run.step(f"{b} finds the classic shadow", region=b) as step:
        found, why = arrival.wait(partial(state, world, b, thing), lambda s: s == wanted_a)
        step.check(found == wanted_a, f"{b}: {json.dumps(found, default=str)}{why}")
    wanted_b = {"desired": {"mode": "eco"}}
    with run.step(f"an application sets the named shadow 'config' in {b}", region=b) as step:
        update(world, b, thing, wanted_b, shadow="config")
        step.check(state(world, b, thing, "config") == wanted_b, f"{b}: {json.dumps(state(world, b, thing, 'config'), default=str)}")
    with run.step(f"{a} finds the named shadow", region=a) as step:
        found, why = arrival.wait(partial(state, world, a, thing, "config"), lambda s: s == wanted_b)
        step.check(found == wanted_b, f"{a}: {json.dumps(found, default=str)}{why}")
    with run.step(f"the named shadow is deleted in {a}; {b} loses it too", region=b) as step:
        delete(world, a, thing, "config")
        found, why = arrival.wait(partial(state, world, b, thing, "config"), lambda s: s is None)
        step.check(found is None, f"{b}: {shown(found)}{why}")
    with run.step("nothing echoed: each shadow's record names the region that wrote it, once",
                  region=a) as step:
        world.settle()
        classic = {r: (record(world, r, thing) or {}) for r in (a, b)}
        named = {r: (record(world, r, thing, "config") or {}) for r in (a, b)}
        ok = (all(c.get(Attr.WRITER_REGION) == a and c.get(Attr.VERSION) == 1 for c in classic.values())
              and all(n.get(Attr.WRITER_REGION) == a and n.get(Attr.STATUS) == "DELETED"
                      and n.get(Attr.VERSION) == 2 for n in named.values()))
        step.check(ok, f"classic: {shown([f'{c.get(Attr.WRITER_REGION)} v{c.get(Attr.VERSION)}' for c in classic.values()])}; "
                       f"named: {shown([f'{n.get(Attr.WRITER_REGION)} {n.get(Attr.STATUS)} v{n.get(Attr.VERSION)}' for n in named.values()])}")
    organisation_replicates(run, a, b, thing)


@wire("shadow-capture-rules-may-not-invoke", journey="shadow-replication",
      description="the function's permissions for the capture rules name another rule, so "
                  "AWS IoT may not invoke it: no shadow change is recorded")
def capture_rules_may_not_invoke(graph: StackGraph) -> StackGraph:
    return with_each(graph, [p for p in graph.of_type("aws:lambda/permission:Permission") if "shadow" in p.name],
                     lambda inputs: {**inputs, "sourceArn": str(inputs["sourceArn"]) + "_elsewhere"},
                     "shadow capture permission")
