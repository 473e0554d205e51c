"""Wall and CPU seconds of the issue-8 large lab through the real CLI, each command run ``--repeat`` times
(the best and every run: on a shared machine the wall time is noisy, the CPU time less so).

    .venv/bin/python benchmarks/cli_times.py [--repeat 3] [--workdir /tmp/vnetlab-cli-times] [--serial-too]

``up`` runs in a new VNETLAB_HOME each time; ``matrix --ports 80 -o json`` on the lab the first ``up`` made.
Goals (issue 8): up < 10 s, matrix < 5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VNETLAB = str(Path(sys.executable).with_name("vnetlab"))


def run(args: list[str], home: Path, **env: str) -> tuple[float, float]:
    """(wall, user+sys CPU, its worker processes' included) of one CLI command, its output thrown away."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([VNETLAB, *args], env={**os.environ, **env, "VNETLAB_HOME": str(home)}, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def report(name: str, runs: list[tuple[float, float]]) -> None:
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"{name}: best wall {min(walls):.2f} s, best CPU {min(cpus):.2f} s; "
          f"runs wall {[round(w, 2) for w in walls]} CPU {[round(c, 2) for c in cpus]}; load {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/vnetlab-cli-times")
    ap.add_argument("--serial-too", action="store_true",
                    help="each `up` run also with VNETLAB_WORKERS=1 (one process), the two in turn")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    lab = work / "large.yaml"
    if not lab.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_large.py"), str(lab)], check=True)
    ups, serial_ups = [], []
    for k in range(args.repeat):
        home = work / f"home{k}"
        shutil.rmtree(home, ignore_errors=True)
        ups.append(run(["up", str(lab)], home))
        if args.serial_too:
            shutil.rmtree(work / "home-serial", ignore_errors=True)
            serial_ups.append(run(["up", str(lab)], work / "home-serial", VNETLAB_WORKERS="1"))
    report("up (new lab)", ups)
    if serial_ups:
        report("up (new lab, VNETLAB_WORKERS=1)", serial_ups)
    report("matrix --ports 80 -o json", [run(["matrix", "--ports", "80", "-o", "json"], work / "home0")
                                         for _ in range(args.repeat)])


if __name__ == "__main__":
    main()
