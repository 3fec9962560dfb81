"""The installer web app's hosting (web/installer/), one site per stack when `installerWeb`
is enabled. See README.md in this folder."""

from components.installer_web.bundle import WEB_BUNDLE_DIR, WebBundle
from components.installer_web.component import InstallerWeb, InstallerWebArgs
from components.installer_web.settings import InstallerWebSettings, parse_settings
from components.installer_web.site_config import SiteRegion

__all__ = ["WEB_BUNDLE_DIR", "InstallerWeb", "InstallerWebArgs", "InstallerWebSettings",
           "SiteRegion", "WebBundle", "parse_settings"]
