"""Simulation benchmark (issue 2, section 8). Run by hand: `.venv/bin/python benchmarks/sim.py`.

A lab of 50 VNets of 20 subnets (hub and spokes), 2,000 VMs and 100 web apps, with NSGs of 20,
200 and 2,000 rules. Reports traces per second on one core for each NSG size (and the ratio of
2,000 to 20 rules, measured in the same run), and the time of the full matrix over all
endpoints for one port.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import generate  # noqa: E402

from vnetlab.engine.matrix import matrix  # noqa: E402
from vnetlab.engine.network import LabView  # noqa: E402
from vnetlab.engine.trace import trace  # noqa: E402
from vnetlab.validation import validate  # noqa: E402


def traces_per_second(net: LabView, flows: list, seconds: float = 3.0) -> float:
    for src, dst, port in flows:  # warm up: NSGs are compiled on first use
        trace(net, src, dst, port)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for src, dst, port in flows:
            trace(net, src, dst, port)
        done += len(flows)
    return done / (time.perf_counter() - start)


def main() -> None:
    rng = random.Random(1)
    results = {}
    for rules in (20, 200, 2000):
        t0 = time.perf_counter()
        topo = generate(rules=rules)
        validate(topo)
        net = LabView(topo)
        build = time.perf_counter() - t0
        eps = net.endpoints()
        flows = [(rng.choice(eps).name, str(rng.choice(eps).ip), rng.choice([22, 80, 443, 8080]))
                 for _ in range(2000)]
        rate = traces_per_second(net, flows)
        verdicts = {}
        for src, dst, port in flows[:500]:
            v = trace(net, src, dst, port).verdict
            verdicts[v] = verdicts.get(v, 0) + 1
        results[rules] = rate
        print(f"NSGs of {rules:>4} rules: {rate:>8.0f} traces/s (lab built and validated in {build:.2f} s; "
              f"verdicts of 500 flows: {verdicts})")
        if rules == 200:
            t0 = time.perf_counter()
            m = matrix(net, ["80"])
            print(f"matrix over {m['endpoints']} endpoints, port 80: {time.perf_counter() - t0:.2f} s "
                  f"({len(m['classes'])} classes, {m['traces']} traces, {m['endpoints'] ** 2 - m['endpoints']} pairs)")
    print(f"2,000-rule NSGs are {results[20] / results[2000]:.2f}x slower than 20-rule ones (goal: at most 2x)")


if __name__ == "__main__":
    main()
