"""Time and memory of `bash .ci/run` from a fresh clone (the CI target: at most 3 minutes and
1.5 GB on a 2-core machine, installs included).

    python3 benchmarks/ci_run.py [--repo DIR] [--keep]

Clones the repository's committed HEAD into a temporary directory and runs `.ci/run` there,
printing the wall time, the CPU time (user + sys, which other load on the machine does not
inflate), the peak resident memory of the largest single process and the peaks of the whole
process tree's memory (pytest workers, Chromium and mypy added up; RSS and PSS), sampled
every 100 ms. The package caches (~/.cache/uv, ~/.cache/pip) are used as they are: say
whether they were warm when quoting figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found: list[int] = []
        for task in tasks:
            text = (task / "children").read_text().split()
            found += [int(child) for child in text]
        return found
    except OSError:
        return []


def _label(pid: int) -> str:
    """A short name for a process: its program and first argument (`python -m mypy`, `node`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [Path(word.decode(errors="replace")).name for word in argv[:3] if word]
    return " ".join(words)[:60]


def _tree_kib(root: int) -> tuple[int, int, dict[str, int]]:
    """(RSS, PSS, PSS by process name) of the process tree in KiB. RSS counts a page shared by
    N processes N times (the pytest workers' libraries, Chromium's processes); PSS counts a 1/N
    share in each, so the tree's PSS is the memory it occupies."""
    rss = pss = 0
    by_name: dict[str, int] = {}
    stack = [(root, "")]
    while stack:
        pid, parent = stack.pop()
        name = _label(pid)
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    own = int(line.split()[1])
                    pss += own
                    # a worker's forked child (an evaluation, a policy run) has its command line
                    shown = f"{name} (forked child)" if name == parent else name
                    by_name[shown] = by_name.get(shown, 0) + own
        except OSError:
            continue
        stack += [(child, name) for child in _children(pid)]
    return rss, pss, by_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=str(PROJECT_DIR), help="repository to clone")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its log")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="ci-run-"))
    clone = workdir / "repo"
    subprocess.run(["git", "clone", "--quiet", args.repo, str(clone)], check=True)
    log = workdir / "ci-run.log"
    print(f"running bash .ci/run in {clone} (log: {log})", flush=True)

    peak_rss = peak_pss = 0
    peak_at, peak_parts = 0.0, {}
    start = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(["bash", ".ci/run"], cwd=clone, stdout=out,
                                   stderr=subprocess.STDOUT, env={**os.environ, "CI": "true"})
        done = threading.Event()

        def sample() -> None:
            # The PSS peak is the larger of two consecutive samples' smaller one: a process
            # caught between vfork and exec reports its parent's memory as its own (one mm),
            # which counted a worker twice for one sample.
            nonlocal peak_rss, peak_pss
            nonlocal peak_at, peak_parts
            before: tuple[int, dict[str, int]] = (0, {})
            while not done.is_set():
                rss, pss, parts = _tree_kib(process.pid)
                peak_rss = max(peak_rss, rss)
                held = min(before, (pss, parts), key=lambda sampled: sampled[0])
                if held[0] > peak_pss:
                    peak_pss, peak_at, peak_parts = held[0], time.monotonic() - start, held[1]
                before = (pss, parts)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)

    summary = [line for line in log.read_text().splitlines() if " passed" in line or " failed" in line]
    print(f"exit code:               {code}")
    print(f"tests:                   {summary[-1].strip('= ') if summary else '(no summary line)'}")
    print(f"wall time:               {wall:.0f} s ({wall / 60:.1f} min; target 3 min: "
          f"{'OK' if wall <= 180 else 'OVER'})")
    print(f"CPU time (user + sys):   {usage.ru_utime + usage.ru_stime:.0f} s")
    print(f"peak RSS, one process:   {usage.ru_maxrss / 1024:.0f} MiB")
    print(f"peak RSS, process tree:  {peak_rss / 1024:.0f} MiB (shared pages counted in each process)")
    print(f"peak PSS, process tree:  {peak_pss / 1024:.0f} MiB (held over two samples 100 ms apart; target "
          f"1.5 GB: {'OK' if peak_pss <= 1.5 * 1024 * 1024 else 'OVER'})")
    print(f"at the PSS peak ({peak_at:.0f} s in), by process:")
    for name, kib in sorted(peak_parts.items(), key=lambda part: -part[1])[:8]:
        print(f"  {kib / 1024:6.0f} MiB  {name}")
    failed = [line for line in log.read_text().splitlines() if line.startswith(("FAILED ", "ERROR "))]
    for line in failed:
        print(line)
    if args.keep or code != 0:  # a failed run keeps its clone and log to read
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
