"""The project's stacks as the tests see them."""

from __future__ import annotations

from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent


def configured_regions(stack: str) -> list[str]:
    doc = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    return list(doc["config"]["iot-multi-region:regions"])
