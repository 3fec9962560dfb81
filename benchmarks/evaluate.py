"""Whole-process time of evaluating the stack under mocks, against the import floor.

    python benchmarks/evaluate.py [--repeat 5]

Each figure is the median wall time of a fresh `python` process (imports included), so it
is what a developer waits for. The floor is `python -c "import pulumi, pulumi_aws"`.
Targets: dev stack <= 3x the floor; 20 regions <= 3x the 2-region time. A second floor row
shows the cost of importing the pulumi_aws modules the stack uses, which no evaluation avoids.
Peak RSS is the largest child so far (getrusage), so it only grows down the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

EVALUATE = """
import json, sys
sys.path.insert(0, {project!r})
from tests.support.snapshots import TWENTY_REGIONS
from tools.harness import evaluate_program
count = {count}
overrides = {{}}
if count:  # the snapshot's regions: each offers every service the stack declares (Pipes too)
    regions = list(TWENTY_REGIONS[:count])
    overrides = {{"regions": regions, "primaryRegion": regions[0]}}
graph = evaluate_program({project!r}, "dev", config_overrides=overrides)
print(json.dumps({{"resources": len(graph.custom_resources())}}))
"""


def timed(code: str) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) of the child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PROJECT_DIR, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"error: the evaluation failed: {last}")
    elapsed = time.perf_counter() - start
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return elapsed, peak, done.stdout


def median_run(code: str, repeat: int) -> tuple[float, int, str]:
    runs = [timed(code) for _ in range(repeat)]
    return (statistics.median(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2])


def provider_modules() -> list[str]:
    """`module.Class` for one resource class of each pulumi_aws module the dev stack uses."""
    import keyword

    sys.path.insert(0, str(PROJECT_DIR))
    from tools.harness import evaluate_program

    graph = evaluate_program(PROJECT_DIR, "dev")
    # pulumi_aws loads a module's resources lazily: name one class per module to load it.
    classes = {r.module: r.type.rsplit(":", 1)[-1] for r in graph.custom_resources()
               if r.type.startswith("aws:")}
    return sorted(f"{m}_.{c}" if keyword.iskeyword(m) else f"{m}.{c}" for m, c in classes.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    floor, floor_rss, _ = median_run("import pulumi, pulumi_aws", args.repeat)
    print(f"{'case':<22}{'median s':>10}{'x floor':>9}{'resources':>11}{'peak RSS MiB':>14}")
    print(f"{'floor (import only)':<22}{floor:>10.2f}{1.0:>9.2f}{'-':>11}{floor_rss / 1024:>14.0f}")
    # What no evaluation can avoid: importing the pulumi_aws modules the stack declares.
    modules = provider_modules()
    imports, imports_rss, _ = median_run(
        "import pulumi, pulumi_aws\n" + "\n".join(f"pulumi_aws.{m}" for m in modules), args.repeat)
    print(f"{'floor + aws modules':<22}{imports:>10.2f}{imports / floor:>9.2f}{'-':>11}"
          f"{imports_rss / 1024:>14.0f}   ({', '.join(m.split('.')[0] for m in modules)})")
    results: dict[str, float] = {}
    for label, count in (("dev stack (2 regions)", 0), ("8 regions", 8), ("20 regions", 20)):
        seconds, rss, out = median_run(EVALUATE.format(project=str(PROJECT_DIR), count=count),
                                       args.repeat)
        resources = json.loads(out.strip().splitlines()[-1])["resources"]
        results[label] = seconds
        print(f"{label:<22}{seconds:>10.2f}{seconds / floor:>9.2f}{resources:>11}{rss / 1024:>14.0f}")

    dev_ratio = results["dev stack (2 regions)"] / floor
    scale_ratio = results["20 regions"] / results["dev stack (2 regions)"]
    print(f"\ndev stack / floor      = {dev_ratio:.2f}  (target <= 3.00)"
          f"  {'OK' if dev_ratio <= 3 else 'OVER TARGET'}")
    print(f"20 regions / 2 regions = {scale_ratio:.2f}  (target <= 3.00)"
          f"  {'OK' if scale_ratio <= 3 else 'OVER TARGET'}")
    evaluation_only = results["dev stack (2 regions)"] - imports
    print(f"dev stack beyond importing its aws modules = {evaluation_only:.2f} s "
          f"({evaluation_only / floor:.2f}x floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
