"""The installer web app's backend in the local run (tools/local/installer_web/): the built site
under the stack's own headers and config, the AWS endpoints a browser calls and a simulated
device. Started when the stack declares the site and fleet provisioning runs in the world."""

from __future__ import annotations

from tools.harness import built_web_bundle
from tools.local.emulation import emulation
from tools.local.emulation.fleet_provisioning import FleetProvisioning
from tools.local.world import World

BUILD_HINT = "build the app with `python -m tools.build_web` (needs Node 20.19+ and npm)"
SERVICE_PATHS = {"cognitoIdp": "cognito-idp", "cognitoIdentity": "cognito-identity", "iot": "iot", "dynamodb": "dynamodb"}


class InstallerWebBackend:
    def __init__(self, world: World, fleet: FleetProvisioning) -> None:
        from tools.local.installer_web.device import SimulatedDevice
        from tools.local.installer_web.gateway import Gateway
        from tools.local.installer_web.site import Site, SiteProblem, declared_config, declared_csp, localise

        declared = declared_config(world)
        self.gateway = Gateway(world, fleet)
        self.device = SimulatedDevice(fleet, {r["region"]: r["provisioningEndpoint"] for r in declared["regions"]})
        self.site: Site | None = None
        self.unavailable = self.problem = ""  # not built here: journeys pend; not as declared: they fail
        bundle = built_web_bundle(world.project_dir)
        if bundle is None or not (bundle / "index.html").is_file():
            self.unavailable = f"the installer web app is not built: {BUILD_HINT}"
            return
        try:
            self.config, csp = localise(declared, declared_csp(world), lambda region, key: self.gateway.endpoint(
                region, SERVICE_PATHS[key]), self.device.address)
        except SiteProblem as problem:
            self.problem = str(problem)
            return
        self.site = Site(bundle, self.config, csp)
        self.gateway.allowed_origin = self.device.allowed_origin = self.site.url
        self.url = self.site.url + "/"

    def describe(self) -> str:
        if self.site is None:
            return f"installer web app: not served ({self.unavailable or self.problem})"
        return (f"installer web app at {self.url} under the stack's CSP; its AWS endpoints (user pool, identity "
                f"pool, IoT claims, DynamoDB) at {self.gateway.url}; a simulated device at {self.device.address}")

    def access(self) -> str:
        """What `--keep` prints."""
        if self.site is None:
            return f"installer web app: {self.unavailable or self.problem}"
        return (f"installer web app: open {self.url} in a browser (regions {', '.join(self.gateway.regions)}); "
                "create an installer first with `python -m tools.installer admin create` against the moto server above")

    def stop(self) -> None:
        for part in (self.site, self.device, self.gateway):
            if part is not None:
                part.stop()


@emulation("installer_web")
def start(world: World) -> InstallerWebBackend | None:
    fleet = world.emulations.get(FleetProvisioning)
    declared = any(o.inputs.get("key") == "config.json"
                   for o in world.declared("aws:s3/bucketObjectv2:BucketObjectv2"))
    return InstallerWebBackend(world, fleet) if fleet is not None and declared else None
