"""The stack outputs operators' tools read, instead of re-deriving what the program declared.

The program exports, per region, what the tools need (`__main__.py`): table names, the device
policy, and each enabled capability's outputs under its config key (`cvm`,
`fleetProvisioning`, `replication`, `jitr`). A tool reads them from a file written by

    pulumi stack output --json --show-secrets --stack <stack> > outputs.json

(`--outputs outputs.json`), or runs that command itself when the Pulumi CLI is installed.
The offline harness produces the same map (`StackGraph.outputs`), which is what the tests and
the local run hand to the tools. Light on imports: no Pulumi, no pulumi_aws.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class OutputsError(ValueError):
    """The outputs cannot be read, or lack what a tool needs; one line naming the fix."""


def load(stack: str, *, outputs_file: Path | None = None, program: Path | None = None,
         run: Any = subprocess.run) -> dict[str, Any]:
    """The stack's outputs: from `outputs_file`, else from the Pulumi CLI."""
    if outputs_file is not None:
        try:
            data = json.loads(outputs_file.read_text())
        except OSError as error:
            raise OutputsError(f"{outputs_file}: cannot be read ({error.strerror}); write it "
                               f"with `pulumi stack output --json --stack {stack} > "
                               f"{outputs_file}`") from None
        except UnicodeDecodeError:
            raise OutputsError(f"{outputs_file}: not UTF-8 text; write it with `pulumi stack "
                               f"output --json --stack {stack} > {outputs_file}`") from None
        except json.JSONDecodeError as error:
            raise OutputsError(f"{outputs_file}: not JSON ({error.msg} at line {error.lineno}); "
                               f"write it with `pulumi stack output --json --stack {stack}`"
                               ) from None
    else:
        if shutil.which("pulumi") is None:
            raise OutputsError(f"the Pulumi CLI is not installed here: pass --outputs FILE, "
                               f"written by `pulumi stack output --json --stack {stack} > FILE`")
        command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
        if program is not None:
            command += ["--cwd", str(program)]
        done = run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise OutputsError(f"`{' '.join(command)}` failed: {detail[0]}")
        data = json.loads(done.stdout)
    if not isinstance(data, dict):
        raise OutputsError("stack outputs are not a JSON object; give the output of "
                           "`pulumi stack output --json`")
    source = outputs_file or f"`pulumi stack output --json --stack {stack}`"
    regions = data.get("regions")
    if regions is not None and not isinstance(regions, dict):
        raise OutputsError(f"{source}: `regions` is not an object (region name -> outputs); give "
                           "the output of `pulumi stack output --json`")
    for name, values in (regions or {}).items():
        if not isinstance(values, dict):
            raise OutputsError(f"{source}: `regions.{name}` is not an object; give the output "
                               "of `pulumi stack output --json`")
    return data


def region(outputs: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """One region's outputs (`regions.<name>`)."""
    regions = outputs.get("regions")
    if not isinstance(regions, Mapping) or not regions:
        raise OutputsError("the stack outputs have no `regions`: deploy the stack "
                           "(`pulumi up`) before using this tool")
    if name not in regions:
        raise OutputsError(f"region {name!r} is not in the stack ({', '.join(sorted(regions))})")
    found: Mapping[str, Any] = regions[name]
    return found


def capability(outputs: Mapping[str, Any], region_name: str, key: str) -> Mapping[str, Any]:
    """A capability's outputs in one region (`regions.<region>.<config key>`)."""
    found = region(outputs, region_name).get(key)
    if not isinstance(found, Mapping):
        raise OutputsError(f"the stack does not enable `{key}` in {region_name} (no "
                           f"`regions.{region_name}.{key}` in its outputs)")
    return found
