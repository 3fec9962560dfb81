"""Wall time, CPU and memory of the local run (`python -m tools.local`), as a user waits for it.

    python benchmarks/local_run.py [--repeat 3] [--stack dev] [-- extra tools.local options]

Each run is a fresh `python -m tools.local --json --quiet` process (imports, evaluation, the
policy pack, the moto server, every journey). Printed per run: wall seconds, the run's own
figure (its report), CPU seconds of the process (user + sys), its peak RSS, the 1-minute load
average before and after (the machine is shared: a loaded machine is slower), the journeys'
seconds and the step counts; then the median wall time against the target (30 s on a
2-core machine) and whether any process the run started outlived it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 30.0  # issue 22: "under 30 s on a quiet machine"


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Figures:
    exit: int
    wall: float
    reported: float
    cpu: float
    peak_mib: float
    load_before: float
    load_after: float
    journeys: dict[str, float]
    counts: dict[str, int]
    warnings: list[str]
    leftover: list[int]


def one_run(stack: str, extra: list[str]) -> Figures:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tools.local", "--json", "--quiet",
                           "--stack", stack, *extra],
                          capture_output=True, text=True, cwd=PROJECT_DIR)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return Figures(
        exit=done.returncode, wall=wall, reported=float(report.get("seconds") or 0),
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        peak_mib=after.ru_maxrss / 1024, load_before=load_before,
        load_after=os.getloadavg()[0],
        journeys={j["name"]: round(j["seconds"], 1) for j in report.get("journeys", [])},
        counts=report.get("counts", {}), warnings=report.get("warnings", []),
        leftover=children_of(os.getpid()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("extra", nargs="*", help="more tools.local options (after --)")
    args = parser.parse_args()
    print(f"python -m tools.local --stack {args.stack} {' '.join(args.extra)}; "
          f"{os.cpu_count()} CPUs, target < {TARGET_SECONDS:.0f} s")
    runs = []
    for index in range(args.repeat):
        run = one_run(args.stack, args.extra)
        runs.append(run)
        print(f"run {index + 1}: exit {run.exit}, wall {run.wall:.1f} s (report "
              f"{run.reported:.1f} s), CPU {run.cpu:.1f} s, peak RSS {run.peak_mib:.0f} MiB, "
              f"load {run.load_before:.2f} -> {run.load_after:.2f}")
        print(f"        journeys (s): {run.journeys}; steps: {run.counts}"
              + (f"; warnings: {run.warnings}" if run.warnings else ""))
    median = statistics.median(r.wall for r in runs)
    leftovers = sorted({pid for r in runs for pid in r.leftover})
    print(f"median wall {median:.1f} s: {'within' if median < TARGET_SECONDS else 'OVER'} the "
          f"{TARGET_SECONDS:.0f} s target; processes left behind: {leftovers or 'none'}")
    return 0 if median < TARGET_SECONDS and all(r.exit == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
