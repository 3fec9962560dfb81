"""The `cvm` config section: defaults without it, one problem per bad field, the root CA bundle
file for imported server certificates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from components.cvm.settings import CvmSettings, parse_settings
from lambdas.cvm_registration.config import PACKAGED_ROOT_CAS
from tests.support.certificates import issue


def parsed(raw: object) -> tuple[CvmSettings, list[str]]:
    problems: list[str] = []
    settings = parse_settings(raw, lambda field, message: problems.append(f"{field}: {message}"))
    return settings, problems


def test_no_section_means_working_defaults() -> None:
    settings, problems = parsed(None)
    assert problems == [] and settings == CvmSettings()
    assert settings.domain_for("iot.example.com") == "provision.iot.example.com"
    assert settings.legacy_batches == () and settings.root_ca_bundle_pem is None


def test_every_field_is_read() -> None:
    settings, problems = parsed({
        "provisioningDomain": "Register.Example.COM.", "wafRateLimit": "300",
        "throttleRateLimit": 2.5, "throttleBurstLimit": 5, "legacyBatches": ["B1", "B.2"],
        "thingNamePrefix": "thing_", "reservedConcurrency": 10, "successRateAlarmPercent": 80,
        "attemptsPerDeviceAlarm": 2, "apiGatewayAccount": "manage"})
    assert problems == []
    assert settings == CvmSettings(
        provisioning_domain="register.example.com", waf_rate_limit=300,
        throttle_rate_limit=2.5, throttle_burst_limit=5, legacy_batches=("B1", "B.2"),
        thing_name_prefix="thing_", reserved_concurrency=10, success_rate_alarm_percent=80,
        attempts_per_device_alarm=2.0, manage_api_gateway_account=True)


def test_each_bad_field_is_one_problem() -> None:
    _, problems = parsed({
        "provisioningDomain": "localhost", "wafRateLimit": True, "throttleRateLimit": 0,
        "throttleBurstLimit": 0, "legacyBatches": "B1", "thingNamePrefix": "has space",
        "reservedConcurrency": -1, "successRateAlarmPercent": 101,
        "attemptsPerDeviceAlarm": 0.5, "rootCaBundleFile": "", "apiGatewayAccount": "adopt"})
    fields = [p.split(":")[0] for p in problems]
    assert sorted(fields) == sorted([
        "provisioningDomain", "wafRateLimit", "throttleRateLimit", "throttleBurstLimit",
        "legacyBatches", "thingNamePrefix", "rootCaBundleFile", "reservedConcurrency",
        "successRateAlarmPercent", "attemptsPerDeviceAlarm", "apiGatewayAccount"])
    assert parsed(["not", "an", "object"])[1] == [
        ": must be an object with the fields provisioningDomain, wafRateLimit, "
        "throttleRateLimit, throttleBurstLimit, legacyBatches, thingNamePrefix, "
        "rootCaBundleFile, reservedConcurrency, successRateAlarmPercent, attemptsPerDeviceAlarm, "
        "apiGatewayAccount"]


def test_root_ca_bundle_file_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "roots.pem"
    good.write_text(PACKAGED_ROOT_CAS.read_text())
    settings, problems = parsed({"rootCaBundleFile": str(good)})
    assert problems == [] and settings.root_ca_bundle_pem == PACKAGED_ROOT_CAS.read_text()

    root = issue("Old Root", ca=True, not_before=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                 days=30)
    expired = tmp_path / "expired.pem"
    expired.write_text(root.pem)
    keyed = tmp_path / "keyed.pem"
    keyed.write_text(root.pem + root.key_pem)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    for path, expected in ((expired, "expired"), (keyed, "private key"),
                           (garbage, "no readable PEM"), (tmp_path / "missing.pem", "cannot read")):
        _, problems = parsed({"rootCaBundleFile": str(path)})
        assert len(problems) == 1 and expected in problems[0], problems
