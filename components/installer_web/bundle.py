"""The installer web app's built bundle (`python -m tools.build_web` writes it).

The build's file names are fixed (web/installer/vite.config.ts), so the stack declares the
same S3 objects whatever the bundle's bytes; `pulumi up` refuses to deploy without the
build, as it does without the Lambda layer. The offline harness hands in a stand-in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from components.packaging import ROOT, PackagingError

WEB_BUNDLE_DIR = ROOT / "build" / "web" / "installer"
BUILD_COMMAND = "python -m tools.build_web"

# path in the bundle -> content type. Everything the site serves besides config.json.
BUNDLE_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "assets/app.js": "text/javascript; charset=utf-8",
    "assets/app.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class BundleFile:
    key: str
    path: Path
    content_type: str
    sha256: str


@dataclass(frozen=True)
class WebBundle:
    directory: Path
    files: tuple[BundleFile, ...]

    @classmethod
    def from_dir(cls, directory: Path) -> WebBundle:
        missing = [key for key in BUNDLE_FILES if not (directory / key).is_file()]
        if missing:
            raise PackagingError(f"installer web app bundle {directory} is missing "
                                 f"{', '.join(missing)}: run `{BUILD_COMMAND}` before `pulumi up`")
        return cls(directory, tuple(
            BundleFile(key, directory / key, content_type,
                       hashlib.sha256((directory / key).read_bytes()).hexdigest())
            for key, content_type in BUNDLE_FILES.items()))
