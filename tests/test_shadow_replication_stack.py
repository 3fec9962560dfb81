"""Shadow replication's graph (dev and prod, every region) and its decisions without AWS:
the record contract, the conflict order, the update that makes one shadow equal another."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.edge.component import OUR_EVENT_TYPES, event_configurations
from components.shadow_replication.component import (
    CAPTURE_RULES,
    REGISTRY_EVENT_TYPES,
    REGISTRY_RULES,
)
from lambdas.contracts.shadows import (
    RecordProblem,
    ShadowRecord,
    Status,
    order_key,
    replica_client_token,
)
from lambdas.shadow_replication.logic import captured_record, state_update
from tools.harness import StackGraph


@pytest.fixture(params=["dev", "prod"])
def graph(request: pytest.FixtureRequest) -> StackGraph:
    return request.getfixturevalue(f"{request.param}_graph")  # type: ignore[no-any-return]


def regions(graph: StackGraph) -> list[str]:
    return sorted(graph.outputs["regions"])


def shadow_resources(graph: StackGraph, type_: str, region: str) -> list[Any]:
    return [r for r in graph.of_type(type_) if r.region == region
            and any(a.type == "iotmr:shadow_replication:ShadowReplication"
                    for a in graph.ancestors(r))]


def function_statements(graph: StackGraph, region: str) -> dict[str, Any]:
    """The function's role policy statements by Sid (IAM is global: the policy belongs to
    this region's component)."""
    [policy] = [p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.inputs["name"] == "shadow-replication"
                and any(a.type == "iotmr:shadow_replication:ShadowReplication"
                        and region in a.name for a in graph.ancestors(p))]
    return {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}


def test_every_region_captures_all_four_shadow_topics_into_its_function(graph: StackGraph) -> None:
    for region in regions(graph):
        every_rule = shadow_resources(graph, "aws:iot/topicRule:TopicRule", region)
        [function] = shadow_resources(graph, "aws:lambda/function:Function", region)
        assert sorted(r.inputs["sql"].split(" FROM '")[1].split("'")[0] for r in every_rule) == \
            sorted(rule.topic for rule in (*CAPTURE_RULES, *REGISTRY_RULES))
        rules = [r for r in every_rule if "$aws/things/" in r.inputs["sql"]]
        for rule in rules:
            assert [a["functionArn"] for a in rule.inputs["lambdas"]] == [function.outputs["arn"]]
            assert "startswith(clientToken, 'iotmr-replica:')" in rule.inputs["sql"]
            assert rule.inputs["errorAction"]["sqs"]["queueUrl"]
        # each rule, and only it, may invoke the function
        permissions = shadow_resources(graph, "aws:lambda/permission:Permission", region)
        assert sorted(p.inputs["sourceArn"].rsplit("/", 1)[1] for p in permissions) == sorted(
            r.inputs["name"] for r in every_rule)
        assert function.inputs["tracingConfig"]["mode"] == "Active"
        assert function.inputs["kmsKeyArn"]


def test_registry_rules_capture_thing_and_membership_events_the_edge_turns_on(
        graph: StackGraph) -> None:
    """The registry publishes nothing unless the region's EventConfigurations turns the
    types on: both ownership choices that declare it include what the rules need."""
    for region in regions(graph):
        rules = [r for r in shadow_resources(graph, "aws:iot/topicRule:TopicRule", region)
                 if "$aws/events/" in r.inputs["sql"]]
        assert len(rules) == len(REGISTRY_RULES)
        for rule in rules:
            assert rule.inputs["errorAction"]["sqs"]["queueUrl"]
            assert "AS kind" in rule.inputs["sql"] and "timestamp" in rule.inputs["sql"]
        declared = [e for e in graph.of_type("aws:iot/eventConfigurations:EventConfigurations")
                    if e.region == region]
        for events in declared:
            assert all(events.inputs["eventConfigurations"][t] is True
                       for t in REGISTRY_EVENT_TYPES)
    assert set(REGISTRY_EVENT_TYPES) <= set(OUR_EVENT_TYPES)
    for ownership in ("manage", "adopt"):
        assert all((event_configurations(ownership) or {})[t] for t in REGISTRY_EVENT_TYPES)


def test_the_mapping_admits_only_other_regions_shadow_records(graph: StackGraph) -> None:
    for region in regions(graph):
        [mapping] = shadow_resources(graph, "aws:lambda/eventSourceMapping:EventSourceMapping", region)
        [pattern] = [json.loads(f["pattern"]) for f in mapping.inputs["filterCriteria"]["filters"]]
        assert pattern["eventName"] == ["INSERT", "MODIFY"]
        assert pattern["dynamodb"]["Keys"]["pk"] == {"S": [{"prefix": "shadow#"}]}
        assert pattern["dynamodb"]["NewImage"]["writerRegion"] == {"S": [{"anything-but": [region]}]}
        assert "device-data" in mapping.inputs["eventSourceArn"]
        assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping.inputs["destinationConfig"]["onFailure"]["destinationArn"]
        assert 0 < mapping.inputs["maximumRetryAttempts"] < 10


def test_the_function_reaches_only_shadow_records_and_this_regions_shadows(graph: StackGraph) -> None:
    for region in regions(graph):
        statements = function_statements(graph, region)
        records = statements["ShadowRecords"]
        assert sorted(records["Action"]) == ["dynamodb:GetItem", "dynamodb:PutItem"]
        assert records["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["shadow#*"]}}
        shadows = statements["ThisRegionsShadows"]
        assert f":iot:{region}:" in shadows["Resource"] and shadows["Resource"].endswith(":thing/*")
        assert not [s for s in statements.values() if "*" in str(s["Action"])]


def test_order_key_orders_by_time_then_region_then_version() -> None:
    assert order_key(10, "eu-west-1", 99) < order_key(11, "eu-west-1", 1)
    assert order_key(10, "eu-west-1", 99) < order_key(10, "us-west-2", 1)
    assert order_key(10, "us-west-2", 1) < order_key(10, "us-west-2", 2)
    assert order_key(9, "us-west-2", 1) < order_key(10, "af-south-1", 1)  # fixed width


def test_a_record_refuses_each_broken_field_by_name() -> None:
    with pytest.raises(RecordProblem) as caught:
        ShadowRecord.create(thing_name="bad name", shadow_name="x" * 65, status="GONE",
                            state=None, origin_timestamp=-1, origin_version="v",
                            writer_region="mars")
    for field in ("thingName", "shadowName", "status", "writerRegion", "originTimestamp",
                  "originVersion"):
        assert field in str(caught.value)
    with pytest.raises(RecordProblem, match="at most 8192"):
        ShadowRecord.create(thing_name="t", shadow_name="", status=Status.PRESENT,
                            state={"desired": {"x": "y" * 9000}}, origin_timestamp=1,
                            origin_version=1, writer_region="eu-west-1")
    with pytest.raises(RecordProblem, match="carries no state"):
        ShadowRecord.create(thing_name="t", shadow_name="", status=Status.DELETED,
                            state={"desired": {}}, origin_timestamp=1, origin_version=1,
                            writer_region="eu-west-1")
    named = ShadowRecord.create(thing_name="t", shadow_name="$cfg", status=Status.PRESENT,
                                state={"reported": {}}, origin_timestamp=1, origin_version=1,
                                writer_region="eu-west-1", version=3)
    assert ShadowRecord.from_plain(named.to_plain()) == named


def test_a_record_whose_key_or_order_key_disagrees_is_refused() -> None:
    record = ShadowRecord.create(thing_name="t", shadow_name="", status=Status.PRESENT,
                                 state={"reported": {"a": 1}}, origin_timestamp=5,
                                 origin_version=1, writer_region="eu-west-1", version=1)
    with pytest.raises(RecordProblem, match="does not name"):
        ShadowRecord.from_plain({**record.to_plain(), "pk": "shadow#other"})
    with pytest.raises(RecordProblem, match="orderKey"):
        ShadowRecord.from_plain({**record.to_plain(), "orderKey": order_key(9, "eu-west-1", 1)})


def test_a_delete_orders_after_the_update_it_deletes() -> None:
    update = captured_record({"operation": "UPDATE", "thingName": "t", "shadowName": "",
                              "timestamp": 7, "version": 4, "state": {"desired": {"a": 1}}},
                             "eu-west-1")
    delete = captured_record({"operation": "DELETE", "thingName": "t", "shadowName": "",
                              "timestamp": 7, "version": 4}, "eu-west-1")
    assert delete.newer_than(update) and delete.status == Status.DELETED


def test_state_update_turns_one_shadow_into_the_other() -> None:
    local = {"desired": {"a": 1, "nested": {"x": 1, "y": 2}, "gone": True},
             "reported": {"r": 1}}
    target = {"desired": {"a": 1, "nested": {"x": 2}, "new": [1, 2]}}
    assert state_update(local, target) == {
        "desired": {"nested": {"x": 2, "y": None}, "gone": None, "new": [1, 2]},
        "reported": None}
    assert state_update(target, target) == {}
    assert state_update({"desired": {"a": 1}}, {"desired": {"a": True}}) == {"desired": {"a": True}}


def test_replica_tokens_fit_the_shadow_client_token_limit() -> None:
    assert len(replica_client_token("ap-southeast-2", 10 ** 11).encode()) <= 64


# --- device organisation ----------------------------------------------------------------------

def test_the_function_may_organise_only_this_regions_things_and_groups(graph: StackGraph) -> None:
    for region in regions(graph):
        statements = function_statements(graph, region)
        things = statements["ThisRegionsThingOrganisation"]
        assert sorted(things["Action"]) == ["iot:DescribeThing", "iot:ListThingGroupsForThing",
                                            "iot:UpdateThing"]
        assert things["Resource"].endswith(":thing/*") and f":iot:{region}:" in things["Resource"]
        groups = statements["ThisRegionsGroupMembership"]
        assert sorted(groups["Action"]) == ["iot:AddThingToThingGroup",
                                            "iot:RemoveThingFromThingGroup"]
        assert all(f":iot:{region}:" in r for r in groups["Resource"])
        # No deletes, no policy attachments: group policies are declared, not replicated.
        assert not [s for s in statements.values()
                    if any(a in str(s["Action"]) for a in ("DeleteThing\"", "AttachPolicy"))]


def test_an_organisation_record_refuses_each_broken_field_by_name() -> None:
    from lambdas.contracts.organisation import OrganisationRecord

    with pytest.raises(RecordProblem) as caught:
        OrganisationRecord.create(
            thing_name="bad name", writer_region="mars", version=-1,
            description={"attributes": {"a b": "x", "k": "v!"}, "thingTypeName": "t y",
                         "orderKey": "1#eu-west-1"},
            groups={"g": {"member": "yes", "orderKey": "x"}, "bad group": {}})
    for field in ("thingName", "writerRegion", "version", "attribute name 'a b'",
                  "attribute k=", "thingTypeName", "thing.orderKey", "groups.g", "bad group"):
        assert field in str(caught.value), field
    with pytest.raises(RecordProblem, match="without a thing type has at most 3"):
        OrganisationRecord.create(
            thing_name="t", writer_region="eu-west-1", groups={},
            description={"attributes": {"a": "1", "b": "2", "c": "3", "d": "4"},
                         "thingTypeName": "", "orderKey": "000000000000001#eu-west-1"})
    key = "000000000000001#eu-west-1"
    with pytest.raises(RecordProblem, match="at most 10 thing groups"):
        OrganisationRecord.create(thing_name="t", writer_region="eu-west-1", description=None,
                                  groups={f"g{n}": {"member": True, "orderKey": key}
                                          for n in range(11)})
    record = OrganisationRecord.create(
        thing_name="t", writer_region="eu-west-1", version=2,
        description={"attributes": {"a": "1"}, "thingTypeName": "", "orderKey": key},
        groups={"g": {"member": False, "orderKey": key}})
    assert OrganisationRecord.from_plain(record.to_plain()) == record
    with pytest.raises(RecordProblem, match="does not name"):
        OrganisationRecord.from_plain({**record.to_plain(), "pk": "shadow#other"})


def test_organisation_elements_conflict_per_element_and_converge_with_few_calls() -> None:
    """Decisions without AWS (fakes for the table and the registry)."""
    from lambdas.contracts.organisation import LocalOrganisation, OrganisationRecord
    from lambdas.shadow_replication import organisation as org

    class Table:
        record: OrganisationRecord | None = None

        def get(self, thing: str) -> OrganisationRecord | None:
            return self.record

        def put(self, record: OrganisationRecord, expected: int | None) -> bool:
            if (self.record.version if self.record else None) != expected:
                return False
            self.record = record
            return True

    class Registry:
        def __init__(self) -> None:
            self.local = LocalOrganisation({}, "", frozenset())
            self.calls: list[str] = []

        def describe(self, thing: str) -> LocalOrganisation | None:
            return self.local

        def describe_thing(self, thing: str, attributes: Any, thing_type: str,
                           had_type: bool) -> None:
            self.calls.append("UpdateThing")
            self.local = LocalOrganisation(dict(attributes), thing_type, self.local.groups)

        def join(self, thing: str, group: str) -> None:
            self.calls.append(f"join {group}")
            self.local = LocalOrganisation(self.local.attributes, self.local.thing_type,
                                           self.local.groups | {group})

        def leave(self, thing: str, group: str) -> None:
            self.calls.append(f"leave {group}")
            self.local = LocalOrganisation(self.local.attributes, self.local.thing_type,
                                           self.local.groups - {group})

    table, registry = Table(), Registry()
    ports = org.OrganisationPorts("eu-west-1", table, registry, now=lambda: 1_700_000_000.0)
    base = 1_700_000_000_000

    def event(kind: str, operation: str, ms: int, **extra: Any) -> dict[str, Any]:
        return {"kind": kind, "thingName": "t", "operation": operation,
                "timestamp": base + ms, **extra}

    assert org.capture(event("THING", "UPDATED", 5, attributes={"a": "1"},
                             thingTypeName=None), ports) == "ORG_RECORDED"
    assert org.capture(event("MEMBERSHIP", "ADDED", 6, groupName="g"), ports) == "ORG_RECORDED"
    # an older change of the description loses, and the registry is put back to the record
    registry.local = LocalOrganisation({"a": "0"}, "", frozenset({"g"}))
    assert org.capture(event("THING", "UPDATED", 4, attributes={"a": "0"},
                             thingTypeName=None), ports) == "ORG_LOST_CONVERGED"
    assert registry.local.attributes == {"a": "1"}
    # the same content again (an echo or a duplicate) writes nothing
    assert table.record is not None
    version = table.record.version
    assert org.capture(event("THING", "UPDATED", 9, attributes={"a": "1"},
                             thingTypeName=""), ports) == "ORG_UNCHANGED"
    assert table.record.version == version
    # a bare creation of a thing whose record this region wrote pulls nothing
    assert org.capture(event("THING", "CREATED", 11, attributes={}), ports) == "ORG_NOTHING"
    # converging an equal registry makes no call; a different one makes one per element
    registry.calls.clear()
    assert org.converge(table.record, ports) == "ORG_IN_SYNC" and registry.calls == []
    registry.local = LocalOrganisation({}, "", frozenset({"x"}))
    assert org.converge(table.record, ports) == "ORG_APPLIED"
    assert registry.calls == ["UpdateThing", "join g"]  # "x" is not the record's: untouched
    # a deletion voids every element ordered before it, and its duplicate changes nothing
    assert org.capture(event("THING", "DELETED", 12), ports) == "ORG_DELETED"
    assert table.record.member_of == frozenset() and table.record.description is not None
    assert table.record.description.attributes == {}
    assert org.capture(event("THING", "DELETED", 12), ports) == "ORG_UNCHANGED"
    assert org.capture(event("MEMBERSHIP", "ADDED", 7, groupName="h"),
                       ports) == "ORG_BEFORE_DELETION"
    assert org.capture(event("MEMBERSHIP", "ADDED", 13, groupName="h"), ports) == "ORG_RECORDED"
    with pytest.raises(RecordProblem, match="timestamp"):
        org.capture({**event("MEMBERSHIP", "ADDED", 1, groupName="g"), "timestamp": "soon"},
                    ports)


# --- the fleet's declared organisation --------------------------------------------------------

# An example fleet organisation (components/shadow_replication/settings.py).
EXAMPLE_ORGANISATION: dict[str, Any] = {
    "thingTypes": [{"name": "gateway", "description": "Field gateways",
                    "searchableAttributes": ["site"]}],
    "thingGroups": [{"name": "fleet"}, {"name": "floor-1", "parent": "fleet", "policy": {
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Subscribe"],
             "Resource": ["topicfilter/grp/iotmr/floor-1/*"]},
            {"Effect": "Allow", "Action": ["iot:Receive"],
             "Resource": ["topic/grp/iotmr/floor-1/*"]}]}}]}


@pytest.fixture(scope="module")
def organised_graph(project_dir: Any) -> StackGraph:
    from tools.harness import evaluate_program

    return evaluate_program(project_dir, "dev",
                            config_overrides={"shadowReplication": EXAMPLE_ORGANISATION})


def test_declared_types_groups_and_group_policies_are_identical_in_every_region(
        organised_graph: StackGraph, project_dir: Any) -> None:
    from pulumi_policy import EnforcementLevel

    from tools.harness import load_program_stack
    from tools.policy_check import run_policies

    graph = organised_graph
    # the least-privilege example passes the policy pack
    config = json.loads((project_dir / "policy" / "config" / "dev.json").read_text())
    report = run_policies(graph, policy_config=config,
                          stack_config=load_program_stack(project_dir, "dev").config)
    assert not [v for v in report.violations if v.level == EnforcementLevel.MANDATORY]
    per_region: dict[str, Any] = {}
    for region in regions(graph):
        types = shadow_resources(graph, "aws:iot/thingType:ThingType", region)
        groups = {g.inputs["name"]: g for g in
                  shadow_resources(graph, "aws:iot/thingGroup:ThingGroup", region)}
        [policy] = shadow_resources(graph, "aws:iot/policy:Policy", region)
        [attachment] = shadow_resources(graph, "aws:iot/policyAttachment:PolicyAttachment", region)
        assert [t.inputs["name"] for t in types] == ["gateway"]
        assert types[0].inputs["properties"]["searchableAttributes"] == ["site"]
        assert groups["floor-1"].inputs["parentGroupName"] == "fleet"
        assert attachment.inputs["target"] == groups["floor-1"].outputs["arn"]
        assert attachment.inputs["policy"] == policy.outputs["name"]
        document = json.loads(policy.inputs["policy"])
        resources = [r for s in document["Statement"] for r in s["Resource"]]
        assert all(r.startswith(f"arn:aws:iot:{region}:") for r in resources)
        per_region[region] = json.dumps(document).replace(region, "<region>")
    assert len(set(per_region.values())) == 1, per_region


def test_fleet_organisation_settings_name_each_broken_field() -> None:
    from components.shadow_replication.settings import parse_settings

    problems: list[str] = []
    parse_settings({
        "thingTypes": [{"name": "ok", "searchableAttributes": ["a", "b", "c", "d"]},
                       {"name": "ok"}, {"name": "bad name"}],
        "thingGroups": [{"name": "child", "parent": "later"}, {"name": "later"},
                        {"name": "p", "policy": {"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": ["iot:Receive"],
                             "Resource": ["arn:aws:iot:eu-west-1:1:topic/x"]}]}},
                        {"name": "q", "policy": "allow all"}, {"name": "r", "colour": 1}],
        "groups": []}, lambda field, message: problems.append(f"{field}: {message}"))
    text = "\n".join(problems)
    for expected in ("thingTypes[0].searchableAttributes", "thingTypes[1].name: 'ok' is declared twice",
                     "thingTypes[2].name", "thingGroups[0].parent: 'later' is not a group declared above",
                     "thingGroups[2].policy.Statement[0].Resource", "thingGroups[3].policy",
                     "thingGroups[4].colour", "groups: is not a setting"):
        assert expected in text, (expected, text)


def test_a_permissive_group_policy_fails_the_policy_pack(project_dir: Any) -> None:
    """Group policies are judged like the device policy: a group policy reaching every
    device's topics is a mandatory violation."""
    from pulumi_policy import EnforcementLevel

    from tools.harness import evaluate_program, load_program_stack
    from tools.policy_check import run_policies

    spec = load_program_stack(project_dir, "dev")
    section = dict(EXAMPLE_ORGANISATION)
    section["thingGroups"] = [{"name": "everyone", "policy": {
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["topicfilter/*"]},
            {"Effect": "Allow", "Action": ["iot:Receive"], "Resource": ["topic/*"]}]}}]
    graph = evaluate_program(project_dir, "dev", config_overrides={"shadowReplication": section})
    config = json.loads((project_dir / "policy" / "config" / "dev.json").read_text())
    report = run_policies(graph, policy_config=config, stack_config=spec.config)
    flagged = [v for v in report.violations if v.level == EnforcementLevel.MANDATORY
               and "everyone" in str(v)]
    assert flagged, [str(v) for v in report.violations][:5]


def test_applied_log_take_back_staleness_and_lost_writes() -> None:
    """The applied log's rules without AWS: a failed registry call takes its entry back, an
    entry older than the pending period is not an echo any more, a conditional write that
    loses to another writer is retried on the fresh log."""
    from lambdas.contracts.organisation import (
        PENDING_MILLISECONDS,
        AppliedLog,
        Description,
        LocalOrganisation,
        OrganisationRecord,
        order_key,
    )
    from lambdas.shadow_replication import organisation as org

    class Log:
        def __init__(self) -> None:
            self.log = AppliedLog("t", "eu-west-1")
            self.lose_next = 0

        def get(self, thing: str) -> AppliedLog:
            return self.log

        def put(self, log: AppliedLog) -> bool:
            if self.lose_next:  # another writer got there first: bump the stored version
                self.lose_next -= 1
                self.log = AppliedLog("t", "eu-west-1", self.log.entries, self.log.version + 1)
                return False
            if log.version != self.log.version + 1:
                return False
            self.log = log
            return True

    class Registry:
        fail = False

        def describe(self, thing: str) -> LocalOrganisation:
            return LocalOrganisation({}, "", frozenset())

        def describe_thing(self, *args: Any, **kwargs: Any) -> None:
            if self.fail:
                raise RuntimeError("throttled")

        def join(self, thing: str, group: str) -> None: ...

        def leave(self, thing: str, group: str) -> None: ...

    clock = [1_700_000_000.0]
    log, registry = Log(), Registry()
    ports = org.OrganisationPorts("eu-west-1", table=None, registry=registry,  # type: ignore[arg-type]
                                  now=lambda: clock[0], applied=log)
    wanted = Description({"x": "1"}, "", order_key(1_700_000_000_000, "us-west-2"))
    record = OrganisationRecord.create(thing_name="t", groups={}, writer_region="us-west-2",
                                       description=wanted)
    registry.fail = True
    with pytest.raises(RuntimeError):
        org.converge(record, ports)
    assert log.log.pending == ()  # taken back: no event will come for it
    registry.fail = False
    log.lose_next = 1
    assert org.converge(record, ports) == "ORG_APPLIED"
    assert [e.value for e in log.log.pending] == [wanted.content]
    clock[0] += PENDING_MILLISECONDS / 1000 + 1
    found = log.log.match("thing", wanted.content, "e1", int(clock[0] * 1000))
    assert found is None  # its echo never came within the hour: a real change now


@pytest.mark.parametrize("change", [{"groupName": "no spaces allowed"}, {"timestamp": 10 ** 15}],
                         ids=["group name", "16-digit timestamp"])
def test_an_organisation_event_the_record_rules_refuse_is_never_written(change: dict[str, Any]) -> None:
    """A capture writes through the record's own checks: an element the rules refuse is a
    RecordProblem (dead-lettered), not a stored record that every later read refuses."""
    from lambdas.contracts.organisation import LocalOrganisation, OrganisationRecord
    from lambdas.contracts.shadows import RecordProblem
    from lambdas.shadow_replication import organisation as org

    written: list[OrganisationRecord] = []

    class Table:
        def get(self, thing: str) -> OrganisationRecord | None:
            return None

        def put(self, record: OrganisationRecord, expected: int | None) -> bool:
            written.append(record)
            return True

    class Registry:
        def describe(self, thing: str) -> LocalOrganisation | None:
            return LocalOrganisation({}, "", frozenset())

    ports = org.OrganisationPorts("eu-west-1", Table(), Registry(), now=lambda: 1_700_000_000.0)  # type: ignore[arg-type]
    event = {"kind": "MEMBERSHIP", "operation": "ADDED", "thingName": "dev-1",
             "groupName": "fleet", "timestamp": 1_700_000_000_000, **change}
    with pytest.raises(RecordProblem):
        org.capture(event, ports)
    assert written == []
