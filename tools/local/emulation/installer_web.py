"""The installer web app's backend in the local run (tools/local/installer_web/): its site,
the AWS endpoints a browser calls and a simulated device. Started when the stack declares the
site and fleet provisioning runs in the run's regions."""

from __future__ import annotations

from tools.local.emulation import emulation
from tools.local.emulation.fleet_provisioning import FleetProvisioning
from tools.local.system import LocalSystem

SITE_CONFIG_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"


@emulation("installer-web")
def start(system: LocalSystem) -> object | None:
    from tools.local.installer_web.backend import InstallerWebBackend

    fleet = system.emulations.get(FleetProvisioning)
    declared = any(o.inputs.get("key") == "config.json" for o in system.declared(SITE_CONFIG_OBJECT))
    if fleet is None or not declared:
        return None
    return InstallerWebBackend(system, fleet)
