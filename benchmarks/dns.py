"""Name resolution in the trace (issue 9). Run by hand: `.venv/bin/python benchmarks/dns.py`.

The simulation benchmark's lab (50 VNets, 2,000 VMs, 100 web apps, NSGs of 200 rules) with 8 storage
accounts, a blob private endpoint for each in the hub, their zone group writing the hub-linked
`privatelink.blob.core.windows.net` zone, linked to every VNet. Reports traces per second from random
sources to the endpoints by address and by name (`acct.blob.core.windows.net`, resolved first), and
their ratio (goal: by name at most 1.5x slower).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import generate_doc  # noqa: E402

from vnetlab.engine.network import LabView  # noqa: E402
from vnetlab.engine.trace import trace  # noqa: E402
from vnetlab.lab import preview  # noqa: E402
from vnetlab.topology import parse  # noqa: E402

ZONE = "privatelink.blob.core.windows.net"


def lab() -> LabView:
    doc = generate_doc(rules=200)
    accounts = [f"acct{i}" for i in range(8)]
    doc["storage_accounts"] = [{"name": a} for a in accounts]
    doc["private_endpoints"] = [{"name": f"pe-{a}", "subnet": "v0/s1", "target": a, "group_id": "blob",
                                 "private_dns_zone_group": [ZONE]} for a in accounts]
    doc["private_dns_zones"] = [{"name": ZONE, "virtual_network_links": [
        {"name": f"l-{v['name']}", "virtual_network": v["name"]} for v in doc["virtual_networks"]]}]
    return LabView(preview(parse(doc), None))


def rate(net: LabView, flows: list, seconds: float = 3.0) -> float:
    for src, dst, port in flows:
        trace(net, src, dst, port)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for src, dst, port in flows:
            trace(net, src, dst, port)
        done += len(flows)
    return done / (time.perf_counter() - start)


def main() -> None:
    rng = random.Random(1)
    net = lab()
    sources = [e.name for e in net.endpoints()]
    pes = [(pe.target, net.topo.private_endpoint_ip(pe)) for pe in net.topo.private_endpoints]
    picks = [(rng.choice(sources), rng.choice(pes), 443) for _ in range(1000)]
    ip_flows = [(s, ip, p) for s, (_, ip), p in picks]
    name_flows = [(s, f"{acct}.blob.core.windows.net", p) for s, (acct, _), p in picks]
    by_ip = by_name = 0.0
    for _ in range(3):  # interleaved, so that a busy machine slows both alike
        by_ip += rate(net, ip_flows, 1.0) / 3
        by_name += rate(net, name_flows, 1.0) / 3
    print(f"by address: {by_ip:.0f} traces/s; by name: {by_name:.0f} traces/s; "
          f"by name is {by_ip / by_name:.2f}x slower (goal: at most 1.5x)")


if __name__ == "__main__":
    main()
