"""The pulumi_policy / pulumi internals behind tools/policy_sdk.py still behave as the offline
engine expects. On an SDK upgrade this fails first and loudly: re-read the internals named in
tools/policy_sdk.py, then widen TESTED_RELEASES."""

from __future__ import annotations

import contextvars

import pulumi
import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

from tools import policy_sdk
from tools.harness import UNKNOWN
from tools.policy_check import wire_props


def test_installed_sdks_are_the_releases_the_adapter_was_written_for():
    installed = policy_sdk.installed_releases()
    for package, prefixes in policy_sdk.TESTED_RELEASES.items():
        assert installed[package].startswith(prefixes), (
            f"{package} {installed[package]} is not a release tools/policy_sdk.py was checked "
            f"against ({', '.join(prefixes)}): re-read the internals it names, then widen "
            "TESTED_RELEASES")


def test_props_round_trip_like_the_engine():
    props = wire_props({"n": 30, "m": {"a": [1, "x"]}})
    assert props["n"] == 30.0 and isinstance(props["n"], float)
    assert props["m"]["a"][1] == "x"
    assert not isinstance(props["m"], dict) and not isinstance(props["m"]["a"], list)
    assert policy_sdk.serialize_properties(policy_sdk.deserialize_properties({"k": "v"})) == {"k": "v"}


def test_unknown_values_raise_the_engine_error_naming_the_path():
    props = wire_props({"policy": UNKNOWN})
    with pytest.raises(policy_sdk.UnknownValueError) as raised:
        props.get("policy")
    assert policy_sdk.unknown_error_message(raised.value) == \
        "string value at .policy can't be known during preview"


def test_not_applicable_is_the_exception_policies_raise():
    def validate(args, report):
        args.not_applicable("no such resource")

    policy = ResourceValidationPolicy("p", "d", validate, EnforcementLevel.MANDATORY)
    from tests.policy.support import resource_args

    with pytest.raises(policy_sdk.NotApplicableError) as raised:
        policy.validate(resource_args("kms-key-rotation", "aws:kms/key:Key", {}), lambda m, u=None: None)
    assert raised.value.reason == "no such resource"


def test_stack_and_project_are_what_policies_read():
    def run() -> tuple[str, str]:
        policy_sdk.set_stack_and_project("prod", "proj")
        return pulumi.get_stack(), pulumi.get_project()

    assert contextvars.Context().run(run) == ("prod", "proj")


def test_analyzer_servicer_takes_a_pack_without_serving_it():
    from policy.pack import ALL_POLICIES

    servicer = policy_sdk.AnalyzerServicer("p", "1.0.0", list(ALL_POLICIES[:2]), EnforcementLevel.MANDATORY)
    assert [p.name for p in servicer.GetAnalyzerInfo(None, None).policies] == [p.name for p in ALL_POLICIES[:2]]
