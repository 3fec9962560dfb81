"""Shadow replication executed in a two-region world of the dev stack (tools/local/world.py):
the declared capture rules (rules engine emulation, fed by the Device Shadow emulation on
every accepted update/delete), the declared function run in-process, the global table
(last writer wins) and the declared event source mapping with its filter. Adversarial:
duplicate and out-of-order delivery, concurrent writes in two regions, deletes racing
updates, a region down, malformed input to the DLQ, echo suppression.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.contracts.shadows import Attr, partition_key, sort_key
from tools.harness import StackGraph
from tools.local.emulation.registry_events import RegistryEvents
from tools.local.emulation.rules_engine import RulesEngine
from tools.local.emulation.shadows import Shadows
from tools.local.emulation.streams import Consumer, Streams
from tools.local.journeys import shadows as sh
from tools.local.pki_material import LocalPki
from tools.local.world import World, open_world

pytestmark = pytest.mark.slow

A, B = "eu-west-1", "us-west-2"  # the dev stack's regions; "us-west-2" > "eu-west-1"


@pytest.fixture(scope="module")
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[World]:
    with open_world(local_graph, regions=[A, B], pki=local_pki,
                    capabilities=["shadow_replication"]) as opened:
        yield opened


class Scenario:
    def __init__(self, world: World, thing: str) -> None:
        self.world, self.thing = world, thing
        for region in (A, B):
            sh.ensure_thing(world, region, thing)

    @property
    def streams(self) -> Streams:
        return self.world.emulation(Streams)

    @property
    def shadows(self) -> Shadows:
        return self.world.emulation(Shadows)

    def at(self, second: int) -> None:
        self.shadows.clock = lambda: second

    def mapping(self, region: str) -> Consumer:
        [found] = [c for c in self.streams.consumers
                   if c.kind == "lambda" and c.region == region and "shadow" in c.target]
        return found

    def update(self, region: str, state: dict[str, Any], shadow: str = "") -> None:
        sh.update(self.world, region, self.thing, state, shadow)

    def state(self, region: str, shadow: str = "") -> dict[str, Any] | None:
        return sh.state(self.world, region, self.thing, shadow)

    def record(self, region: str, shadow: str = "") -> dict[str, Any]:
        return sh.record(self.world, region, self.thing, shadow) or {}

    def shadow_version(self, region: str, shadow: str = "") -> int:
        answer = self.world.client("iot-data", region).get_thing_shadow(
            thingName=self.thing, **({"shadowName": shadow} if shadow else {}))
        return int(json.loads(answer["payload"].read())["version"])

    def captured(self, region: str, message: str = "shadow change captured") -> list[str]:
        """Outcomes of the region's captures of this thing (the function's log lines)."""
        from tools.local.emulation.lambdas import LambdaRuntime

        name = f"iotmr-dev-{region}-shadow-replication"
        runtime = self.world.emulation(LambdaRuntime)
        # The functions share one powertools logger (same service): lines are told apart
        # by the function name each carries.
        lines = dict.fromkeys(line for r in (A, B) for line in runtime.function(
            f"iotmr-dev-{r}-shadow-replication").output if line.startswith("{"))
        parsed = [json.loads(line) for line in lines]
        return [str(line.get("outcome")) for line in parsed
                if line.get("message") == message
                and line.get("thingName") == self.thing and line.get("function_name") == name]

    def dead_letters(self, region: str) -> list[dict[str, Any]]:
        sqs = self.world.client("sqs", region)
        url = sqs.get_queue_url(QueueName=self.mapping(region).dead_letter_arn.rsplit(":", 1)[-1])["QueueUrl"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def make(world: World) -> Iterator[Any]:
    world.settle()
    world.calls.clear()
    made: list[Scenario] = []

    def new(thing: str) -> Scenario:
        scenario = Scenario(world, thing)
        for region in (A, B):
            scenario.dead_letters(region)
        made.append(scenario)
        return scenario
    yield new
    world.calls.down.clear()
    world.emulation(Shadows).clock = lambda: int(time.time())
    world.settle()


# --- the happy paths ------------------------------------------------------------------------

def test_classic_shadow_written_in_a_is_found_in_b_and_not_echoed(make: Any) -> None:
    s = make("shadow-classic")
    s.update(A, {"reported": {"temperature": 21, "firmware": {"version": "1.0"}}})
    s.world.settle()

    assert s.state(B) == {"reported": {"temperature": 21, "firmware": {"version": "1.0"}}}
    # One record, written by A, once: B's applied write was not re-exported.
    assert (s.record(A)[Attr.WRITER_REGION], s.record(A)[Attr.VERSION]) == (A, 1)
    assert s.record(B) == s.record(A)
    assert s.captured(A) == ["RECORDED"]
    assert s.captured(B) == []  # the rules' WHERE dropped B's replica-token documents
    assert s.shadow_version(B) == 1 and s.shadow_version(A) == 1


def test_named_shadow_update_and_key_removal_and_delete_replicate_from_b(make: Any) -> None:
    s = make("shadow-named")
    s.at(6000)
    s.update(B, {"desired": {"mode": "eco", "limits": {"low": 1, "high": 9}}}, "config")
    s.world.settle()
    assert s.state(A, "config") == {"desired": {"mode": "eco", "limits": {"low": 1, "high": 9}}}

    s.at(6001)
    s.update(B, {"desired": {"limits": {"low": None}, "mode": None, "fan": True}}, "config")
    s.world.settle()
    assert s.state(A, "config") == {"desired": {"limits": {"high": 9}, "fan": True}}
    assert s.state(A) is None  # the classic shadow is another document

    s.at(6002)
    sh.delete(s.world, B, s.thing, "config")
    s.world.emulation(Shadows).publish_pending()  # B's capture records the delete at 6002
    s.at(6005)  # A applies it later: A's own /delete/accepted carries 6005 and no token
    s.world.settle()
    assert s.state(A, "config") is None
    record = s.record(A, "config")
    assert (record[Attr.STATUS], record[Attr.WRITER_REGION], record[Attr.VERSION]) == ("DELETED", B, 3)
    assert Attr.EXPIRES_AT in record
    # A's applied updates never reached its function (the rules' WHERE); its applied delete
    # did (no token on deletes) and was recognised as the record's content: not re-exported.
    assert s.captured(A) == ["ECHO"], (s.captured(A), s.captured(B))


# --- delivery ---------------------------------------------------------------------------------

def test_duplicate_delivery_changes_nothing(make: Any) -> None:
    s = make("shadow-duplicate")
    s.update(A, {"reported": {"on": True}})
    s.shadows.publish_pending()  # A's capture records it
    s.streams.global_tables.replicate()  # type: ignore[union-attr]
    mapping = s.mapping(B)
    records = mapping.reader.read()
    s.streams.deliver(mapping, records)
    version = s.shadow_version(B)
    s.streams.deliver(mapping, records)  # the mapping's retry or a replay
    s.world.settle()

    assert s.state(B) == {"reported": {"on": True}}
    assert s.shadow_version(B) == version  # no second write
    assert s.dead_letters(B) == []


def test_out_of_order_delivery_ends_at_the_newest_state(make: Any) -> None:
    s = make("shadow-out-of-order")
    s.at(1000)
    s.update(A, {"reported": {"step": 1}})
    s.world.emulation(Shadows).publish_pending()
    s.at(1001)
    s.update(A, {"reported": {"step": 2}})
    s.world.emulation(Shadows).publish_pending()
    s.streams.global_tables.replicate()  # type: ignore[union-attr]
    mapping = s.mapping(B)
    records = [r for r in mapping.reader.read() if s.thing in json.dumps(r)]
    assert len(records) == 2
    s.streams.deliver(mapping, list(reversed(records)))  # newest first, then the stale one
    s.world.settle()

    assert s.state(B) == {"reported": {"step": 2}}
    assert s.shadow_version(B) == 1  # the stale record was superseded, never applied


# --- conflicts ----------------------------------------------------------------------------

def test_concurrent_updates_the_later_origin_timestamp_wins_everywhere(make: Any) -> None:
    s = make("shadow-concurrent")
    tables = s.streams.global_tables
    assert tables is not None
    with tables.held():
        s.at(2000)
        s.update(B, {"desired": {"color": "blue"}})
        s.at(2001)
        s.update(A, {"desired": {"color": "red"}})
        s.world.emulation(Shadows).publish_pending()
    s.world.settle()

    assert s.state(A) == s.state(B) == {"desired": {"color": "red"}}
    assert s.record(A)[Attr.WRITER_REGION] == s.record(B)[Attr.WRITER_REGION] == A


def test_same_second_tie_goes_to_the_greater_region_even_when_dynamodb_kept_the_other(make: Any) -> None:
    """B writes first, A second in the same second: the global table keeps A's (the later
    write) but the rule says B (region tie-break). B sees its write overwritten in its
    stream, re-asserts it, and every region converges on B's."""
    s = make("shadow-tie")
    tables = s.streams.global_tables
    assert tables is not None
    s.at(3000)
    with tables.held():
        s.update(B, {"desired": {"color": "blue"}})
        s.update(A, {"desired": {"color": "red"}})
        s.world.emulation(Shadows).publish_pending()
    s.world.settle()

    assert s.state(A) == s.state(B) == {"desired": {"color": "blue"}}
    assert s.record(A)[Attr.WRITER_REGION] == s.record(B)[Attr.WRITER_REGION] == B
    assert s.record(A)[Attr.ORDER_KEY] == s.record(B)[Attr.ORDER_KEY]


def test_a_change_made_after_seeing_a_record_of_the_same_second_is_not_reverted(make: Any) -> None:
    """B writes at second 3500 and A receives it; A then deletes within the same second. The
    region tie-break alone ("us-west-2" > "eu-west-1") would revert A's delete; A saw B's
    record, so its delete is ordered after it and both regions end without the shadow."""
    s = make("shadow-seen-tie")
    s.at(3500)
    s.update(B, {"desired": {"mode": "eco"}})
    s.world.settle()
    assert s.state(A) == {"desired": {"mode": "eco"}}
    sh.delete(s.world, A, s.thing)
    s.world.settle()

    assert s.state(A) is None and s.state(B) is None
    assert s.record(A)[Attr.STATUS] == s.record(B)[Attr.STATUS] == "DELETED"


def test_a_second_change_in_the_same_second_follows_the_lamport_step_of_the_first(make: Any) -> None:
    """A's first change after B's record of the same second was ordered one second later; A's
    next change of that second (a greater shadow version) must still come after it, not be
    dropped as an old delivery of A's own."""
    s = make("shadow-seen-tie-twice")
    s.at(3600)
    s.update(B, {"desired": {"mode": "eco"}})
    s.world.settle()
    s.update(A, {"desired": {"mode": "x"}})
    s.world.emulation(Shadows).publish_pending()
    s.update(A, {"desired": {"mode": "y"}})
    s.world.emulation(Shadows).publish_pending()
    s.world.settle()

    assert s.state(A) == s.state(B) == {"desired": {"mode": "y"}}
    assert s.record(A)[Attr.ORDER_KEY] == s.record(B)[Attr.ORDER_KEY]


def test_delete_racing_an_older_update_wins_and_a_later_update_revives(make: Any) -> None:
    s = make("shadow-delete-race")
    s.at(4000)
    s.update(A, {"reported": {"x": 1}})
    s.world.settle()
    tables = s.streams.global_tables
    assert tables is not None
    with tables.held():
        s.at(4001)
        s.update(B, {"reported": {"x": 2}})
        s.at(4002)
        sh.delete(s.world, A, s.thing)
        s.world.emulation(Shadows).publish_pending()
    s.world.settle()
    assert s.state(A) is None and s.state(B) is None
    assert s.record(B)[Attr.STATUS] == "DELETED"

    s.at(4003)
    s.update(B, {"reported": {"x": 3}})
    s.world.settle()
    assert s.state(A) == s.state(B) == {"reported": {"x": 3}}


def test_a_late_local_write_older_than_the_record_converges_back(make: Any) -> None:
    """Clock skew: B applied A's state from second 5001, then a device in B writes with the
    shadow service's timestamp 5000. By the rule A's wins: B's capture puts it back."""
    s = make("shadow-skew")
    s.at(5001)
    s.update(A, {"desired": {"level": 7}})
    s.world.settle()
    s.at(5000)
    s.update(B, {"desired": {"level": 1}})
    s.world.settle()

    assert s.state(B) == s.state(A) == {"desired": {"level": 7}}
    assert s.record(B)[Attr.WRITER_REGION] == A


# --- failures -----------------------------------------------------------------------------

def test_b_applies_while_a_is_down_and_a_catches_up_after(make: Any) -> None:
    s = make("shadow-region-down")
    s.update(A, {"reported": {"battery": 80}})
    s.shadows.publish_pending()  # A's capture records it
    s.streams.global_tables.replicate()  # type: ignore[union-attr]
    s.world.calls.down.add(A)
    s.world.calls.clear()
    s.world.settle()
    assert s.state(B) == {"reported": {"battery": 80}}
    b_function = [c for c in s.world.calls.calls if B in c.caller and "shadow" in c.caller]
    assert b_function and not [c for c in b_function if c.region == A]  # nothing left B

    s.update(B, {"reported": {"battery": 75}})
    s.world.settle()
    s.world.calls.down.discard(A)
    s.world.settle()
    assert s.state(A) == {"reported": {"battery": 75}}


def test_malformed_record_goes_to_the_dlq_with_its_content_and_is_not_applied(make: Any) -> None:
    s = make("shadow-malformed")
    s.world.resource("dynamodb", A).Table(s.world.table(sh.DEVICE_DATA)).put_item(Item={
        Attr.PK: partition_key(s.thing), Attr.SK: sort_key(""), Attr.THING_NAME: s.thing,
        Attr.SHADOW_NAME: "", Attr.STATUS: "PRESENT", Attr.STATE: "{not json",
        Attr.ORIGIN_TIMESTAMP: 1, Attr.ORIGIN_VERSION: 1, Attr.WRITER_REGION: A,
        Attr.VERSION: 1})
    s.world.settle()

    [letter] = s.dead_letters(B)
    assert "state is not JSON" in letter["reason"]
    assert s.thing in json.dumps(letter["payload"])
    assert s.state(B) is None
    assert not s.mapping(B).dead_lettered  # answered, not retried into the mapping's DLQ


def test_malformed_shadow_message_goes_to_the_dlq(make: Any) -> None:
    s = make("shadow-bad-message")
    s.world.emulation(RulesEngine).publish(
        A, f"$aws/things/{s.thing}/shadow/update/documents",
        {"current": {"state": {"desired": "not an object"}, "version": 1}, "timestamp": 1})
    [letter] = s.dead_letters(A)
    assert "state.desired must be an object" in letter["reason"]
    assert s.record(A) == {}


def test_a_capture_carrying_the_replica_token_is_dropped_even_without_the_rule_filter(make: Any) -> None:
    """The function checks the token itself (the rules' WHERE is the first line)."""
    from tools.local.emulation.lambdas import LambdaRuntime

    s = make("shadow-token")
    [function] = [f for f in s.world.emulation(LambdaRuntime).functions
                  if "shadow" in f and A in f and not f.startswith("arn:")]
    answer = s.world.emulation(LambdaRuntime).invoke(function, {
        "thingName": s.thing, "shadowName": "", "operation": "UPDATE", "timestamp": 1,
        "version": 1, "state": {"desired": {"a": 1}}, "clientToken": "iotmr-replica:eu-west-1:1"})
    assert answer == {"outcome": "ECHO"} and s.record(A) == {}


# --- device organisation: attributes, thing type, static groups --------------------------------

GROUPS = ("org-sensors", "org-floor-1", "org-floor-2")
BASE_MS = (int(time.time()) - 3600) * 1000


class Organised(Scenario):
    """A thing with the fleet's groups in both regions (the stack declares them)."""

    def __init__(self, world: World, thing: str) -> None:
        super().__init__(world, thing)
        for region in (A, B):
            for group in GROUPS:
                sh.ensure_group(world, region, group)
            sh.ensure_thing_type(world, region, "org-gateway")
        world.settle()

    @property
    def events(self) -> RegistryEvents:
        return self.world.emulation(RegistryEvents)

    def at_ms(self, ms: int) -> None:
        """Pin the registry's clock `ms` after BASE_MS (today: removal tombstones are
        pruned by their age, so the clock must be near the function's)."""
        self.events.clock = lambda: BASE_MS + ms

    def organisation(self, region: str) -> dict[str, Any] | None:
        return sh.organisation(self.world, region, self.thing)

    def org_record(self, region: str) -> dict[str, Any]:
        return sh.organisation_record(self.world, region, self.thing) or {}

    def org_captured(self, region: str) -> list[str]:
        return self.captured(region, "organisation change captured")


@pytest.fixture
def organised(make: Any, world: World) -> Iterator[Any]:
    def new(thing: str) -> Organised:
        scenario = Organised(world, thing)
        for region in (A, B):
            scenario.dead_letters(region)
        return scenario
    yield new
    world.emulation(RegistryEvents).clock = lambda: int(time.time() * 1000)


def _expected(attributes: dict[str, str], groups: list[str], thing_type: str = "") -> dict[str, Any]:
    return {"attributes": attributes, "thingType": thing_type, "groups": sorted(groups)}


def test_attributes_type_and_groups_set_in_a_are_found_in_b_and_not_echoed(organised: Any) -> None:
    s = organised("org-basic")
    s.at_ms(1_000_000)
    sh.describe(s.world, A, s.thing, {"site": "lisbon", "a": "1", "b": "2", "c": "3"},
                thing_type="org-gateway")  # 4 attributes: only with a thing type
    s.at_ms(1_000_001)
    sh.join(s.world, A, s.thing, "org-sensors")
    s.world.settle()

    want = _expected({"site": "lisbon", "a": "1", "b": "2", "c": "3"}, ["org-sensors"],
                     "org-gateway")
    assert s.organisation(B) == s.organisation(A) == want
    record = s.org_record(A)
    assert (record["writerRegion"], record["version"]) == (A, 2)
    assert s.org_record(B) == record
    # B's applied UpdateThing and AddThingToThingGroup were published and captured in B,
    # and recognised as the record's content: never re-exported.
    assert s.org_captured(B) == ["ORG_NOTHING", "ORG_ECHO", "ORG_ECHO"]
    assert s.org_captured(A)[-2:] == ["ORG_RECORDED", "ORG_RECORDED"]


def test_a_group_left_in_b_is_left_in_a_and_removing_the_type_keeps_the_quota(organised: Any) -> None:
    s = organised("org-leave")
    sh.describe(s.world, A, s.thing, {"x": "1", "y": "2", "z": "3", "w": "4"},
                thing_type="org-gateway")
    sh.join(s.world, A, s.thing, "org-floor-1")
    s.world.settle()
    sh.leave(s.world, B, s.thing, "org-floor-1")
    # One UpdateThing: the type goes with the 4th attribute (3 at most without a type).
    s.world.client("iot", B).update_thing(thingName=s.thing, removeThingType=True,
                                          attributePayload={"attributes": {"x": "1"}})
    s.world.settle()

    assert s.organisation(A) == s.organisation(B) == _expected({"x": "1"}, [])


def test_duplicate_and_out_of_order_membership_events_end_at_the_newest(organised: Any) -> None:
    s = organised("org-order")
    s.at_ms(2_000_000)
    sh.join(s.world, A, s.thing, "org-floor-1")
    s.at_ms(2_000_005)
    sh.leave(s.world, A, s.thing, "org-floor-1")
    messages = [m for m in s.events.drain()]
    engine = s.world.emulation(RulesEngine)
    for region, topic, message in reversed(messages + messages):  # newest first, twice
        engine.publish(region, topic, message)
    s.world.settle()

    assert s.organisation(A) == s.organisation(B) == _expected({}, [])
    record = json.loads(s.org_record(B)["organisation"])
    assert record["groups"]["org-floor-1"]["member"] is False  # the removal's tombstone
    assert s.org_record(A)["version"] == 1  # the older add and the duplicates changed nothing


def test_concurrent_changes_of_different_elements_in_two_regions_both_survive(organised: Any) -> None:
    """A sets attributes, B joins a group within the replication delay: the global table
    keeps one write, the other region re-asserts its element; both regions end with both."""
    s = organised("org-concurrent")
    s.world.settle()
    tables = s.streams.global_tables
    assert tables is not None
    with tables.held():
        s.at_ms(3_000_000)
        sh.describe(s.world, A, s.thing, {"site": "porto"})
        s.at_ms(3_000_001)
        sh.join(s.world, B, s.thing, "org-sensors")
        s.events.publish_pending()
    s.world.settle()

    want = _expected({"site": "porto"}, ["org-sensors"])
    assert s.organisation(A) == s.organisation(B) == want
    assert s.org_record(A)["organisation"] == s.org_record(B)["organisation"]


def test_concurrent_changes_of_the_same_element_the_later_wins_everywhere(organised: Any) -> None:
    s = organised("org-same-element")
    tables = s.streams.global_tables
    assert tables is not None
    with tables.held():
        s.at_ms(4_000_001)
        sh.describe(s.world, A, s.thing, {"mode": "a"})
        s.at_ms(4_000_000)
        sh.describe(s.world, B, s.thing, {"mode": "b"})
        s.events.publish_pending()
    s.world.settle()
    assert s.organisation(A) == s.organisation(B) == _expected({"mode": "a"}, [])


def test_removal_racing_an_older_add_wins(organised: Any) -> None:
    s = organised("org-remove-race")
    s.at_ms(5_000_000)
    sh.join(s.world, A, s.thing, "org-floor-2")
    s.world.settle()
    tables = s.streams.global_tables
    assert tables is not None
    with tables.held():
        s.at_ms(5_000_010)
        sh.leave(s.world, B, s.thing, "org-floor-2")
        s.at_ms(5_000_005)  # an older re-add in A (clock skew), delivered after
        sh.describe(s.world, A, s.thing, {"k": "v"})
        s.events.publish_pending()
    s.world.settle()
    assert s.organisation(A) == s.organisation(B) == _expected({"k": "v"}, [])


# --- echoes racing the origin's next change; deletion tombstones -------------------------------

class HeldEvents:
    """Registry events of one region kept back (their asynchronous delivery is late), to be
    delivered in a chosen order."""

    def __init__(self, s: Organised, region: str) -> None:
        self.s, self.region = s, region
        self.messages: list[Any] = []
        self._enqueue = s.events._enqueue

    def __enter__(self) -> HeldEvents:
        def enqueue(region: str, topic: str, message: dict[str, Any]) -> None:
            if region == self.region:
                self.messages.append((region, topic, message))
            else:
                self._enqueue(region, topic, message)
        self.s.events._enqueue = enqueue  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.s.events._enqueue

    def deliver(self, messages: list[Any]) -> None:
        engine = self.s.world.emulation(RulesEngine)
        for region, topic, message in messages:
            engine.publish(region, topic, message)
        self.s.world.settle()


def test_an_echo_of_the_first_of_two_quick_changes_does_not_win_over_the_second(organised: Any) -> None:
    """A sets x=1 then x=2 within B's apply delay; B's registry publishes its applied x=1
    with a timestamp later than A's x=2. Delivered last (asynchronous invocation keeps no
    order), it must be recognised as B's echo, not recorded as B's newer change."""
    s = organised("org-echo-race")
    with HeldEvents(s, B) as held:
        s.at_ms(6_000_100)
        sh.describe(s.world, A, s.thing, {"x": "1"})
        s.at_ms(6_000_300)  # B applies x=1 now: its event is timestamped after A's x=2
        s.world.settle()
        s.at_ms(6_000_200)
        sh.describe(s.world, A, s.thing, {"x": "2"})
        s.at_ms(6_000_400)
        s.world.settle()
    assert len(held.messages) == 2
    held.deliver(list(reversed(held.messages + held.messages)))  # late, reordered, twice

    assert s.organisation(A) == s.organisation(B) == _expected({"x": "2"}, [])
    assert s.org_record(A)["writerRegion"] == A and s.org_record(B) == s.org_record(A)
    assert s.org_captured(B).count("ORG_ECHO") == 4  # two echoes, each delivered twice
    # A real later change in B, to a value B applied before, is captured and replicated.
    s.at_ms(6_000_500)
    sh.describe(s.world, B, s.thing, {"x": "1"})
    s.world.settle()
    assert s.organisation(A) == s.organisation(B) == _expected({"x": "1"}, [])
    assert s.org_record(A)["writerRegion"] == B


def test_an_echo_of_a_quick_add_then_remove_does_not_re_add_the_group(organised: Any) -> None:
    s = organised("org-echo-race-group")
    with HeldEvents(s, B) as held:
        s.at_ms(7_000_100)
        sh.join(s.world, A, s.thing, "org-floor-1")
        s.at_ms(7_000_300)
        s.world.settle()
        s.at_ms(7_000_200)
        sh.leave(s.world, A, s.thing, "org-floor-1")
        s.at_ms(7_000_400)
        s.world.settle()
    [added, removed] = held.messages
    assert added[1].endswith("/added") and removed[1].endswith("/removed")
    held.deliver([removed, added, added])  # the add's echo last, and duplicated

    assert s.organisation(A) == s.organisation(B) == _expected({}, [])
    record = json.loads(s.org_record(B)["organisation"])
    assert record["groups"]["org-floor-1"]["member"] is False
    assert s.org_record(B) == s.org_record(A) and s.org_record(A)["writerRegion"] == A
    # The applied log is consumed: nothing pending is left to swallow a real change.
    log = s.world.resource("dynamodb", B).Table(s.world.table(sh.DEVICE_DATA)).get_item(
        Key={Attr.PK: partition_key(s.thing), Attr.SK: f"applied#{B}"}).get("Item")
    assert log is not None
    assert [e for e in json.loads(log["applied"]) if not e["echo"]] == []


def test_a_deleted_things_groups_never_come_back_to_a_re_created_thing(organised: Any) -> None:
    s = organised("org-deleted")
    s.at_ms(8_000_000)
    sh.describe(s.world, A, s.thing, {"site": "beja"})
    sh.join(s.world, A, s.thing, "org-sensors")
    s.world.settle()
    assert s.organisation(B) == _expected({"site": "beja"}, ["org-sensors"])
    s.at_ms(8_000_100)
    s.world.client("iot", A).delete_thing(thingName=s.thing)
    s.world.settle()
    assert json.loads(s.org_record(B)["organisation"])["deleted"] == f"{BASE_MS + 8_000_100:015d}#{A}"
    assert s.organisation(B) == _expected({}, [])  # B's thing (until its deletion) left too
    # Re-created in A (another device, same name) and in B (its registry replication):
    s.at_ms(8_000_200)
    s.world.client("iot", A).create_thing(thingName=s.thing)
    s.world.client("iot", B).delete_thing(thingName=s.thing)
    s.at_ms(8_000_300)
    s.world.client("iot", B).create_thing(thingName=s.thing)
    s.world.settle()
    assert s.organisation(A) == s.organisation(B) == _expected({}, [])
    # The new device's own organisation (later timestamps) replicates as usual.
    s.at_ms(8_000_400)
    sh.join(s.world, B, s.thing, "org-floor-2")
    s.world.settle()
    assert s.organisation(A) == s.organisation(B) == _expected({}, ["org-floor-2"])


def test_a_deletion_racing_an_older_group_add_in_the_other_region_wins(organised: Any) -> None:
    s = organised("org-delete-race")
    s.at_ms(9_000_000)
    sh.join(s.world, A, s.thing, "org-sensors")
    s.world.settle()
    tables = s.streams.global_tables
    assert tables is not None
    with tables.held():
        s.at_ms(9_000_050)  # B adds a group the deletion in A has not seen
        sh.join(s.world, B, s.thing, "org-floor-1")
        s.at_ms(9_000_100)
        s.world.client("iot", A).delete_thing(thingName=s.thing)
        s.events.publish_pending()
    s.world.settle()
    assert s.org_record(A)["organisation"] == s.org_record(B)["organisation"]
    record = json.loads(s.org_record(A)["organisation"])
    assert not [g for g, m in record["groups"].items() if m["member"]]
    assert s.organisation(B) == _expected({}, [])
    s.at_ms(9_000_200)
    s.world.client("iot", A).create_thing(thingName=s.thing)
    s.world.settle()
    assert s.organisation(A) == s.organisation(B) == _expected({}, [])


def test_a_record_for_a_thing_not_yet_in_b_waits_and_applies_when_the_thing_arrives(organised: Any) -> None:
    s = organised("org-waiting")
    thing = "org-waiting-late"
    s.world.client("iot", A).create_thing(thingName=thing)
    sh.describe(s.world, A, thing, {"site": "faro"})
    sh.join(s.world, A, thing, "org-sensors")
    s.world.settle()
    assert sh.organisation(s.world, B, thing) is None  # not lost: the record waits
    assert s.dead_letters(B) == []
    s.world.client("iot", B).create_thing(thingName=thing)  # the registry replication's work
    s.world.settle()
    assert sh.organisation(s.world, B, thing) == _expected({"site": "faro"}, ["org-sensors"])


def test_a_thing_the_registry_replication_creates_pulls_its_organisation_not_its_marker(
        organised: Any) -> None:
    """The registry replication creates B's thing with its `replicatedBy` marker: that
    creation is not the device's organisation, and must not overwrite A's."""
    from lambdas.contracts.organisation import REPLICATION_MARKER

    s = organised("org-marker")
    thing = "org-marker-late"
    s.world.client("iot", A).create_thing(thingName=thing)
    sh.describe(s.world, A, thing, {"site": "evora"})
    s.world.settle()
    s.world.client("iot", B).create_thing(thingName=thing, attributePayload={
        "attributes": {REPLICATION_MARKER: "exec-1/event-1"}})
    s.world.settle()
    assert sh.organisation(s.world, B, thing) == _expected({"site": "evora"}, [])
    assert sh.organisation(s.world, A, thing) == _expected({"site": "evora"}, [])
    record = sh.organisation_record(s.world, A, thing) or {}
    assert record["writerRegion"] == A and REPLICATION_MARKER not in record["organisation"]


def test_the_replication_marker_is_the_name_the_registry_machine_writes() -> None:
    from pathlib import Path

    from lambdas.contracts.organisation import REPLICATION_MARKER

    asl = (Path(__file__).resolve().parent.parent / "components" / "replication"
           / "replication.asl.json").read_text()
    assert f'"{REPLICATION_MARKER}.$"' in asl


def test_organisation_applies_in_b_while_a_is_down(organised: Any) -> None:
    s = organised("org-region-down")
    sh.describe(s.world, A, s.thing, {"battery": "li"})
    s.events.publish_pending()
    s.streams.global_tables.replicate()  # type: ignore[union-attr]
    s.world.calls.down.add(A)
    s.world.calls.clear()
    s.world.settle()
    assert s.organisation(B) == _expected({"battery": "li"}, [])
    calls = [c for c in s.world.calls.calls if B in c.caller and "shadow" in c.caller]
    assert calls and not [c for c in calls if c.region == A]
    s.world.calls.down.discard(A)


def test_malformed_organisation_record_and_event_go_to_the_dlq(organised: Any) -> None:
    from lambdas.contracts import organisation as org

    s = organised("org-malformed")
    s.world.resource("dynamodb", A).Table(s.world.table(sh.DEVICE_DATA)).put_item(Item={
        org.Attr.PK: partition_key(s.thing), org.Attr.SK: org.SORT_KEY,
        org.Attr.THING_NAME: s.thing, org.Attr.ORGANISATION: "{not json",
        org.Attr.WRITER_REGION: A, org.Attr.VERSION: 1})
    s.world.settle()
    [letter] = s.dead_letters(B)
    assert "organisation is not JSON" in letter["reason"] and s.thing in json.dumps(letter)

    s.world.emulation(RulesEngine).publish(
        A, f"$aws/events/thingGroupMembership/thingGroup/org-sensors/thing/{s.thing}/added",
        {"operation": "JOINED", "timestamp": 1})
    [letter] = s.dead_letters(A)
    assert "operation of a MEMBERSHIP event" in letter["reason"]


# --- backfill: tools/state_reconcile.py (called by tools/reconcile.py) ------------------------

def test_reconcile_finds_and_repairs_device_state_a_region_lost_paced_by_quota(organised: Any) -> None:
    from tools.local.sfn_adapter import VirtualClock
    from tools.replication_reconcile import QuotaLimiter
    from tools.state_reconcile import (
        DIFFERS,
        OWN_DIFFERS,
        REPAIRED,
        STATE_API_QUOTAS,
        reconcile_state,
    )

    s = organised("org-backfill")
    s.update(A, {"reported": {"fw": "2.0"}})
    sh.describe(s.world, A, s.thing, {"site": "braga"})
    sh.join(s.world, A, s.thing, "org-sensors")
    s.world.settle()
    assert s.organisation(B) == _expected({"site": "braga"}, ["org-sensors"])
    # B loses its copy behind the replication's back (events lost: drained, not published)
    s.world.client("iot-data", B).delete_thing_shadow(thingName=s.thing)
    sh.leave(s.world, B, s.thing, "org-sensors")
    list(s.shadows.drain())
    list(s.events.drain())
    table = s.world.table(sh.DEVICE_DATA)

    def run(apply: bool) -> Any:
        # Paced on a virtual clock: the pacing is the limiter's, the waits need not be real.
        limiter = QuotaLimiter(STATE_API_QUOTAS, 0.5, clock=lambda: paced.slept, sleep=paced.sleep)
        report = reconcile_state(B, dynamodb=s.world.client("dynamodb", B), table_name=table,
                                 iot=s.world.client("iot", B),
                                 iot_data=s.world.client("iot-data", B), limiter=limiter,
                                 apply=apply)
        return report, limiter

    paced = VirtualClock()
    dry, _ = run(apply=False)
    assert {f"{s.thing}/classic", f"{s.thing} (organisation)"} <= set(dry.examples[DIFFERS])
    assert s.state(B) is None  # a dry run changes nothing
    paced = VirtualClock()
    applied, limiter = run(apply=True)
    # within the quota: each API's calls beyond its burst (the module's other things too)
    # waited 1/rate each
    assert all(paced.slept >= (n - max(1.0, limiter.rate(api) * limiter.burst_seconds)) / limiter.rate(api) - 1e-6
               for api, n in limiter.granted.items()), (paced.slept, limiter.granted)
    assert {f"{s.thing}/classic", f"{s.thing} (organisation)"} <= set(applied.examples[REPAIRED])
    assert s.state(B) == {"reported": {"fw": "2.0"}}
    assert s.organisation(B) == _expected({"site": "braga"}, ["org-sensors"])
    assert limiter.granted["AddThingToThingGroup"] >= 1 and limiter.granted["UpdateThingShadow"] >= 1
    s.world.settle()
    # the repair was not re-exported: the records still name A
    assert s.org_record(B)["writerRegion"] == A and s.record(B)[Attr.WRITER_REGION] == A
    # A's own records are compared in A, never "repaired" there
    sh.leave(s.world, A, s.thing, "org-sensors")
    list(s.events.drain())
    own = reconcile_state(A, dynamodb=s.world.client("dynamodb", A), table_name=table,
                          iot=s.world.client("iot", A), iot_data=s.world.client("iot-data", A),
                          limiter=QuotaLimiter(STATE_API_QUOTAS, 0.5, clock=lambda: paced.slept,
                                               sleep=paced.sleep), apply=True)
    assert f"{s.thing} (organisation)" in own.examples[OWN_DIFFERS]
    assert s.organisation(A) == _expected({"site": "braga"}, [])


def test_a_replacement_whose_request_would_exceed_the_shadow_quota_still_converges(make: Any) -> None:
    """B holds 400 keys, A's later write holds 400 others: the one update turning B's shadow
    into A's (400 values and 400 nulls) is over 8 KB although both shadows fit. AWS counts
    the state document sent, so B must get there in steps that each fit."""
    s = make("shadow-quota")
    tables = s.streams.global_tables
    assert tables is not None
    mine = {f"k{n:03d}": 1 for n in range(400)}
    theirs = {f"m{n:03d}": 2 for n in range(400)}
    with tables.held():
        s.at(4000)
        s.update(B, {"desired": mine})
        s.at(4001)
        s.update(A, {"desired": theirs})
        s.world.emulation(Shadows).publish_pending()
    s.world.settle()

    assert s.state(A) == s.state(B) == {"desired": theirs}
    assert s.dead_letters(B) == []


def test_a_shadow_under_8_kb_of_utf_8_replicates_though_its_escaped_json_would_not_fit(make: Any) -> None:
    """The quota counts bytes: 2 000 'é' are 4 000 bytes of UTF-8 and 12 000 as \\u escapes."""
    s = make("shadow-utf8")
    label = {"reported": {"label": "é" * 2000}}
    s.update(A, label)
    s.world.settle()

    assert s.state(B) == label
    assert s.dead_letters(A) == []
