"""The installer web app in a real browser: Debian's Chromium, headless, driven through
playwright-core (web/installer/e2e/robot.mjs) against the local run's site, the stack's own
security headers and config, the emulated AWS endpoints and a simulated device, in the run's
first region with fleet provisioning (A) and the next (B). What it checks, screen by screen:
docs/local-run.md, "Journeys and wires". Screenshots go to build/installer-web/screenshots/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import tempfile
import urllib.request
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.fleet_provisioning.component import ALLOW_LIST_ADMINS_GROUP
from lambdas.contracts import fleet_allow_list as allow_list
from tools import installer
from tools.harness import StackGraph
from tools.local.emulation.installer_web import InstallerWebBackend
from tools.local.graph_edit import with_each
from tools.local.journeys import JourneyRun, journey, run_config, shown, wire
from tools.local.journeys.fleet_provisioning import recorder_wrote
from tools.local.journeys.registry import plain_item
from tools.local.world import World

CAPABILITY = "fleet_provisioning"
SCREENSHOTS = Path("build") / "installer-web" / "screenshots"
PHONE = {"width": 390, "height": 844, "mobile": True}
DESKTOP = {"width": 1280, "height": 860}
TEMPORARY_PASSWORD = "Temporary-Passw0rd!"  # moto does not check SRP proofs; Cognito would
NEW_PASSWORD = "Field-Installer-2026!"
DEVICE_ADDRESS = "https://device-setup.invalid/provision"  # the declared one; served locally
PROVISIONED_TIMEOUT_SECONDS = 30
COUNTDOWN_TICK_MS = 1_000
CLAIM_EXPIRY_TOLERANCE_SECONDS = 2
CLEAN_STORAGE = {"localStorage": 0, "sessionStorage": 0, "cookies": "", "indexedDB": [], "caches": 0}


@run_config("installer-web")
def device_address(stack_config: Mapping[str, Any], project: str) -> tuple[dict[str, Any], str] | None:
    """Give the stack's site a device setup address, so "Send to device" is exercised."""
    section = stack_config.get(f"{project}:installerWeb")
    if not isinstance(section, Mapping) or not section.get("enabled") or section.get("deviceLocalAddress"):
        return None
    return ({"installerWeb": {**section, "deviceLocalAddress": DEVICE_ADDRESS}},
            f"installerWeb.deviceLocalAddress = {DEVICE_ADDRESS} (the installer-web journey sends the hand-over "
            "file to a simulated device)")


def create_user(world: World, region: str, username: str, groups: list[str]) -> None:
    pool = world.emulation(InstallerWebBackend).gateway.regions[region]["userPool:UserPool"]["id"]
    idp = world.client("cognito-idp", region)
    idp.admin_create_user(UserPoolId=pool, Username=username, TemporaryPassword=TEMPORARY_PASSWORD,
                          UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"},
                                          {"Name": "email_verified", "Value": "true"}], MessageAction="SUPPRESS")
    for group in groups:
        idp.admin_add_user_to_group(UserPoolId=pool, Username=username, GroupName=group)


def check_handover(path: Path, claim: Mapping[str, Any], endpoints: Mapping[str, str]) -> str:
    """What the device checks (device.check_handover), and that the file is the claim's."""
    from tools.local.installer_web.device import check_handover as device_checks

    bundle = json.loads(path.read_text())
    expires = device_checks(bundle, endpoints)
    if bundle["certificateId"] != claim["certificateId"] or bundle["region"] != claim["region"]:
        raise AssertionError("the file's certificate is not the claim AWS IoT issued")
    skew = abs((expires - claim["expiration"]).total_seconds())
    if skew > CLAIM_EXPIRY_TOLERANCE_SECONDS:
        raise AssertionError(f"expiry {expires} is {skew:.0f} s from the claim's")
    return (f"{path.name}: certificate {claim['certificateId'][:10]}…, key matches, expires {expires:%H:%M:%S} "
            f"(claim {claim['expiration']:%H:%M:%S}), endpoint {bundle['endpoint']}, root CA(s)")


class Browser:
    """The robot plus the journey's conventions (screenshots, headings)."""

    def __init__(self, robot: Any, shots: Path, backend: InstallerWebBackend) -> None:
        self.robot, self.shots, self.backend = robot, shots, backend
        self.taken: list[Path] = []
        self.secrets: dict[tuple[str, str], str] = {}

    def __call__(self, command: str, **args: Any) -> Any:
        try:
            return self.robot(command, **args)
        except Exception as error:  # say what the app last asked AWS, and what it got
            calls = "; ".join(f"{c.region} {c.service} {c.operation} -> {c.status}"
                              for c in self.backend.gateway.calls[-4:])
            raise type(error)(f"{error} [last AWS calls: {calls or 'none'}]") from None

    def shot(self, name: str) -> None:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self("screenshot", path=str(path))
        self.taken.append(path)

    def screen(self, heading: str, name: str | None = None) -> None:
        self("heading", text=heading)
        if name:
            self.shot(name)

    def sign_out(self) -> Any:
        self("click", name="Sign out")
        self.screen("Sign in")
        return self("storage")

    def first_sign_in(self, username: str, region: str, *, wrong_code_first: bool = False) -> None:
        """Sign in, set the new password, enrol TOTP (the secret kept for later sign-ins)."""
        self("fill", label="User name", value=username)
        self("fill", label="Password", value=TEMPORARY_PASSWORD)
        self("click", name="Sign in")
        self.screen("Choose your password", f"{username}-new-password")
        self("fill", label="New password", value=NEW_PASSWORD)
        self("fill", label="Repeat the new password", value=NEW_PASSWORD)
        self("click", name="Set password")
        self.screen("Set up your authenticator app", f"{username}-totp-enrolment")
        secret = self.secrets[username, region] = "".join(self("texts", selector="code.secret")[0].split())
        if wrong_code_first:
            self("fillTotp", secret=secret, offset=1)
            self("click", name="Confirm")
            self("waitText", selector="[role=alert]", pattern="code is not right")
            self.shot(f"{username}-wrong-code")
        self("fillTotp", secret=secret)
        self("click", name="Confirm")
        self.screen("Provision a device")

    def axe(self, run: JourneyRun, screen: str) -> None:
        with run.step(f"accessibility: axe-core finds no WCAG 2.1 AA violation on the {screen} screen") as step:
            found = self("axe")
            step.check(not found, f"{len(found)} violation(s){': ' + '; '.join(found) if found else ''}")


def start_browser() -> AbstractContextManager[Any]:
    """Chromium starts when the run starts, beside the stack's evaluation (otherwise 2 s of
    this journey)."""
    from tools.local.installer_web import robot as robot_module

    if robot_module.missing():
        return contextlib.nullcontext()
    try:
        return contextlib.closing(robot_module.Robot())
    except (OSError, robot_module.RobotError):  # the journey starts it again; its step says why not
        return contextlib.nullcontext()


@journey("installer-web", "Installer web app in a real browser: sign-in with MFA, claim, hand over to a device, "
         "allow-list, region failover", capability=CAPABILITY, order=35, prepare=start_browser,
         background=True)  # mostly waits on Chromium: it runs alongside the others
def installer_web(run: JourneyRun) -> None:
    from tools.local.installer_web import robot as robot_module
    from tools.local.installer_web.site import declared_config, declared_csp

    regions = run.regions_with(CAPABILITY, "installer web app")
    backend = run.world.emulations.get(InstallerWebBackend)
    if not regions:
        return
    if backend is None:
        return run.pending("installer web app", reason="the stack declares no installer web site "
                                                       "(installerWeb.enabled)")
    with run.step("the stack declares the site: its config.json and its response headers policy",
                  region=regions[0]) as step:
        declared_regions = [r["region"] for r in declared_config(run.world)["regions"]]
        step.check(set(backend.gateway.regions) <= set(declared_regions) and "connect-src" in declared_csp(run.world),
                   f"config.json for {shown(declared_regions)}; a CSP with connect-src")
    if backend.problem:
        with run.step("the site is served with the stack's security headers and config.json",
                      region=regions[0]) as step:
            step.check(False, backend.problem, backend.problem)
    why_not = backend.unavailable or robot_module.missing()
    if why_not:
        return run.pending("installer web app in a browser", reason=why_not)
    shots = run.world.project_dir / SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    robot = run.prepared or robot_module.Robot()
    try:
        _drive(run, Browser(robot, shots, backend), regions[0], regions[1] if len(regions) > 1 else None)
    finally:
        robot.close()
        backend.gateway.unreachable.clear()


def _origin(url: str) -> str:
    return "{0.scheme}://{0.netloc}".format(urlsplit(url))


def _drive(run: JourneyRun, browser: Browser, region_a: str, region_b: str | None) -> None:
    world, backend = run.world, browser.backend
    gateway, device = backend.gateway, backend.device
    table = backend.config["regions"][0]["allowListTable"]

    with run.step("the site is served with the stack's security headers and config.json", region=region_a) as step:
        with urllib.request.urlopen(backend.url, timeout=10) as response:  # noqa: S310 (our local site)
            headers = {k.lower(): v for k, v in response.headers.items()}
        config = json.loads(urllib.request.urlopen(backend.url + "config.json", timeout=10).read())  # noqa: S310
        csp = headers.get("content-security-policy", "")
        step.check("frame-ancestors 'none'" in csp and gateway.url in csp and headers.get("x-frame-options") == "DENY"
                   and "max-age=" in headers.get("strict-transport-security", "")
                   and [r["region"] for r in config["regions"]] == list(gateway.regions),
                   f"CSP connect-src {csp.split('connect-src ')[1].split(';')[0]}; regions "
                   f"{shown([r['region'] for r in config['regions']])}")

    for region in filter(None, (region_a, region_b)):
        create_user(world, region, "tess", [installer.INSTALLERS_GROUP])
    create_user(world, region_a, "ada", [ALLOW_LIST_ADMINS_GROUP])
    create_user(world, region_a, "nadia", [])

    with run.step("browser: Chromium headless starts (playwright-core)") as step:
        version = browser("context", **DESKTOP)  # waits for the launch
        heading = browser("goto", url=backend.url)
        options = browser("regionOptions")
        step.check(heading == "Sign in" and len(options) == len(gateway.regions),
                   f"Chromium {version}; first screen \"{heading}\"; regions offered {shown([o['text'] for o in options])}")
        browser.shot("sign-in")

    with run.step("administrator: first sign-in (new password, TOTP enrolment with QR), allows a serial, refuses "
                  "an invalid one, disables another", region=region_a) as step:
        browser("select", label="Region", value=region_a)
        browser.first_sign_in("ada", region_a)
        browser("click", name="Manage the allow-list")
        browser.screen(f"Allow-list ({region_a})")
        for serial in ("SN-WEB-A", "SN-WEB-OFF"):
            browser("fill", label="Serial number", value=serial)
            browser("click", name="Allow")
            browser("waitText", selector="[role=status]", pattern=f"{serial} is allowed")
        browser("fill", label="Serial number", value="SN-WEB-OFF")
        browser("click", name="Disable")
        browser("waitText", selector="[role=status]", pattern="SN-WEB-OFF is disabled")
        browser("fill", label="Serial number", value="bad serial!")
        browser("click", name="Allow")
        refused = browser("waitText", selector="[role=alert]", pattern="not a valid serial")
        rows = browser("texts", selector="table tbody tr")
        browser.shot("admin-allow-list")
        on, off = (plain_item(world.client("dynamodb", region_a).get_item(
            TableName=table, Key={"deviceUid": {"S": f"{allow_list.KEY_PREFIX}{s}"}}, ConsistentRead=True
        ).get("Item")) or {} for s in ("SN-WEB-A", "SN-WEB-OFF"))
        broken = [p for e in (on, off) for p in allow_list.problems(e)]
        step.check(on.get("state") == allow_list.State.ALLOWED and on.get("enabled") is True
                   and off.get("enabled") is False
                   and not broken  # the web app's writes keep the allow-list contract
                   and any(r.startswith("SN-WEB-A\tALLOWED\tyes") for r in rows)
                   and any(r.startswith("SN-WEB-OFF\tALLOWED\tno") for r in rows)
                   and allow_list.SERIAL_RULE in refused[0],
                   f"SN-WEB-A {on.get('state')}/enabled={on.get('enabled')}, SN-WEB-OFF enabled={off.get('enabled')};"
                   f" the list shows both ({len(rows)} rows); invalid serial refused with the contract's rule",
                   f"entries break the allow-list contract: {'; '.join(broken)}" if broken else "")
    browser.axe(run, "admin")

    with run.step("administrator signs out: nothing left in browser storage", region=region_a) as step:
        storage = browser.sign_out()
        step.check(storage == CLEAN_STORAGE, f"after sign-out: {shown(storage)}")

    _installer_claims(run, browser, region_a, "SN-WEB-A")

    with run.step("installer signs out, then signs in with the keyboard only (TOTP challenge, wrong code first)",
                  region=region_a) as step:
        storage = browser.sign_out()
        browser("keys", keys=[{"type": "tess"}, {"press": "Tab"}, {"type": TEMPORARY_PASSWORD}, {"press": "Enter"}])
        browser.screen("Enter your code", "tess-totp-challenge")
        browser("fillTotp", secret=browser.secrets["tess", region_a], offset=1)
        browser("keys", keys=[{"press": "Enter"}])
        wrong = browser("waitText", selector="[role=alert]", pattern="code is not right")
        browser("fillTotp", secret=browser.secrets["tess", region_a])
        browser("keys", keys=[{"press": "Enter"}])
        browser.screen("Provision a device")
        step.check(storage == CLEAN_STORAGE, f"storage after sign-out {shown(storage)}; wrong code: \"{wrong[0]}\"; "
                                             "then signed in")
        browser.sign_out()

    with run.step("a pool member outside the installers group is refused by the identity pool",
                  region=region_a) as step:
        browser.first_sign_in("nadia", region_a)
        browser("click", name="Request claim")
        alert = browser("waitText", selector="[role=alert]", pattern="not in the installers group")
        browser.shot("not-in-group")
        refusals = [c for c in gateway.calls if c.operation == "GetCredentialsForIdentity" and c.status == 400]
        step.check(bool(refusals), f"app: \"{alert[0]}\"; identity pool refused {len(refusals)} "
                                   "GetCredentialsForIdentity call(s)")
        browser("click", name="Sign out")

    if region_b is not None:
        # The game day may take region A out of DNS once this journey is done with it; what the
        # browser provisioned there must be usable in B by then (the evacuation's preflight).
        provisioned = next(o for o in reversed(device.outcomes) if o.serial == "SN-WEB-A")
        row = recorder_wrote(run, region_a, "SN-WEB-A", provisioned.certificate_id or "",
                             provisioned.certificate_pem or "")
        run.known_elsewhere(region_a, "SN-WEB-A", row, provisioned.certificate_pem or "", without="provisioning there")
        run.done_with(region_a)
        # Only the browser loses region A: the journeys running alongside still use it.
        with run.step(f"{region_a} stops answering the installer: the app picks {region_b}, the nearest healthy "
                      "region", region=region_b) as step:
            gateway.unreachable.add(region_a)
            installer.allow_serial(world.resource("dynamodb", region_b).Table(table), "SN-WEB-B",
                                   now=dt.datetime.now(dt.timezone.utc))
            browser("context", **PHONE)
            browser("goto", url=backend.url)
            options = {o["value"]: o for o in browser("regionOptions")}
            browser.shot("region-down")
            step.check(options[region_b]["selected"] and "not answering" in options[region_a]["text"],
                       f"offered: {shown([o['text'] for o in options.values()])}; selected {region_b}")
        _installer_claims(run, browser, region_b, "SN-WEB-B")
        gateway.unreachable.discard(region_a)

    with run.step("the browser talked only to the site, the stack's AWS endpoints and the device; no CSP "
                  "violation") as step:
        observed = browser("observed")
        allowed = {_origin(backend.url), _origin(gateway.url), _origin(device.address)}
        elsewhere = sorted({_origin(r["url"]) for r in observed["requests"]} - allowed)
        step.check(not elsewhere and not observed["violations"],
                   f"{len(observed['requests'])} requests to {shown(sorted(allowed))}; elsewhere: {shown(elsewhere)}; "
                   f"CSP violations: {shown(observed['violations'])}; {len(browser.taken)} screenshots in "
                   f"{SCREENSHOTS}")


def _installer_claims(run: JourneyRun, browser: Browser, region: str, serial: str) -> None:
    gateway, device = browser.backend.gateway, browser.backend.device
    with run.step(f"installer on a phone: first sign-in in {region} (new password, TOTP enrolment, a wrong code "
                  "first)", region=region) as step:
        browser("context", **PHONE)
        browser("goto", url=browser.backend.url)
        browser("select", label="Region", value=region)
        browser.first_sign_in("tess", region, wrong_code_first=True)
        layout = browser("layout")
        step.check(layout["scrollWidth"] <= layout["viewport"] and layout["smallTargets"] == 0,
                   f"signed in; {layout['viewport']} px wide, content {layout['scrollWidth']} px, "
                   f"{layout['smallTargets']} touch target(s) under 24 px")

    with run.step(f"installer requests a claim for {serial} in {region}; the countdown runs", region=region) as step:
        before = len(gateway.claims)
        browser("fill", label="Device serial number (optional)", value=serial)
        browser("click", name="Request claim")
        browser.screen("Claim ready")
        first = browser("texts", selector="#countdown")[0]
        # the next tick: the page's clock moved on one second (the app counts each second)
        browser("fastForward", ms=COUNTDOWN_TICK_MS)
        later = browser("waitText", selector="#countdown", pattern=rf"^\s*(?!{re.escape(first.strip())}\s*$)\d+:\d\d",
                        timeout=2_000)[0]
        browser.shot(f"claim-{region}")
        claims = gateway.claims[before:]
        step.check(len(claims) == 1 and claims[0]["region"] == region and first != later
                   and first.startswith(("4:", "5:")),
                   f"claim {claims[0]['certificateId'][:10] if claims else None}… in "
                   f"{claims[0]['region'] if claims else None}; countdown {first} -> {later}")

    with run.step("the downloaded hand-over file: certificate parses, key matches, expiry is the claim's, endpoint "
                  "is the claim region's", region=region) as step:
        # the file holds the claim's private key: removed once checked, never left in /tmp
        with tempfile.TemporaryDirectory(prefix="installer-web-") as downloads:
            path = Path(browser("download", name="Download hand-over file", dir=downloads))
            step.check(path.name == f"claim-{serial}-{region}.json", check_handover(path, claims[0], device.endpoints))
    browser.axe(run, "claim")

    with run.step(f"Send to device: the device takes the file and provisions {serial} through {region}'s template "
                  "and hook", region=region) as step:
        device.serial, seen = serial, len(device.outcomes)
        browser("click", name="Send to device")
        browser("waitText", selector="[role=status]", pattern="device accepted the file")
        outcome = next(iter(device.wait_for_outcome(seen + 1, PROVISIONED_TIMEOUT_SECONDS)[seen:]), None)
        status = run.world.client("iot", region).describe_certificate(certificateId=outcome.certificate_id)[
            "certificateDescription"]["status"] if outcome and outcome.certificate_id else None
        browser.shot(f"sent-to-device-{region}")
        step.check(outcome is not None and outcome.error is None and outcome.thing == serial and status == "ACTIVE",
                   f"device {serial}: thing {outcome.thing if outcome else None}, certificate {status}"
                   + (f", error {outcome.error}" if outcome and outcome.error else ""))


@wire("installer-web-csp-blocks-iot", journey="installer-web",
      description="the site's Content-Security-Policy leaves out the AWS IoT endpoints the app calls for claims")
def csp_blocks_iot(graph: StackGraph) -> StackGraph:
    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        csp = inputs["securityHeadersConfig"]["contentSecurityPolicy"]
        csp["contentSecurityPolicy"] = "; ".join(
            " ".join(w for w in directive.split() if not w.startswith("https://iot."))
            for directive in str(csp["contentSecurityPolicy"]).split("; "))
        return inputs
    return with_each(graph, graph.of_type("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"), change,
                     "response headers policy")
