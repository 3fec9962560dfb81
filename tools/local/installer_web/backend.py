"""Everything the browser needs in the local run, started once per run: the AWS endpoints
(gateway.py), the simulated device (device.py) and the site (site.py)."""

from __future__ import annotations

from tools.harness import built_web_bundle
from tools.local.emulation.fleet_provisioning import FleetProvisioning
from tools.local.installer_web.device import SimulatedDevice
from tools.local.installer_web.gateway import Gateway
from tools.local.installer_web.site import Site, SiteProblem, declared_config, declared_csp, localise
from tools.local.system import LocalSystem

BUILD_HINT = "build the app with `python -m tools.build_web` (needs Node 20.19+ and npm)"
SERVICE_PATHS = {"cognitoIdp": "cognito-idp", "cognitoIdentity": "cognito-identity",
                 "iot": "iot", "dynamodb": "dynamodb"}


class InstallerWebBackend:
    def __init__(self, system: LocalSystem, fleet: FleetProvisioning) -> None:
        self.system = system
        declared = declared_config(system)
        self.gateway = Gateway(system, fleet)
        self.device = SimulatedDevice(fleet, {r["region"]: r["provisioningEndpoint"]
                                              for r in declared["regions"]})
        self.site: Site | None = None
        self.unavailable = ""  # the app cannot be served here (not built): journeys pend
        self.problem = ""  # the stack's site would not work as declared: journeys fail
        self.gateway.start()
        self.device.start()
        bundle = built_web_bundle(system.project_dir)
        if bundle is None or not (bundle / "index.html").is_file():
            self.unavailable = f"the installer web app is not built: {BUILD_HINT}"
            return
        try:
            self.config, self.csp = localise(
                declared, declared_csp(system),
                lambda region, key: self.gateway.endpoint(region, SERVICE_PATHS[key]),
                self.device.address)
        except SiteProblem as problem:
            self.problem = str(problem)
            return
        self.site = Site(bundle, self.config, self.csp)
        self.site.start()
        self.gateway.allowed_origin = self.site.url
        self.device.allowed_origin = self.site.url

    @property
    def url(self) -> str:
        return self.site.url + "/" if self.site else ""

    def describe(self) -> str:
        if self.site is None:
            return f"installer web app: not served ({self.unavailable or self.problem})"
        return (f"installer web app at {self.url} under the stack's CSP; its AWS endpoints "
                f"(user pool, identity pool, IoT claims, DynamoDB) at {self.gateway.url}; a "
                f"simulated device at {self.device.address}")

    def access(self) -> str:
        """What `--keep` prints."""
        if self.site is None:
            return f"installer web app: {self.unavailable or self.problem}"
        return (f"installer web app: open {self.url} in a browser (regions "
                f"{', '.join(self.gateway.regions)}); create an installer first with "
                "`python -m tools.installer admin create` against the moto server above")

    def stop(self) -> None:
        for part in (self.site, self.device, self.gateway):
            if part is not None:
                part.stop()
