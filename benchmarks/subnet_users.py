"""ARM lists of route tables and NAT gateways, each naming the subnets that use it. Run by hand:
`.venv/bin/python benchmarks/subnet_users.py`.

A lab of 50 VNets x 20 subnets, each subnet with its own route table (1,000 tables) and each VNet with
a NAT gateway on all its subnets (50 gateways). Reports, in one run, the time to write every item as
its own GET does (one pass over the lab's subnets per item) and as a list does (one pass for the list),
and checks both give the same JSON.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vnetlab.api.network import ROUTE_TABLES  # noqa: E402
from vnetlab.api.public_ips import NAT_GATEWAYS  # noqa: E402
from vnetlab.lab import Lab  # noqa: E402
from vnetlab.model import Topology  # noqa: E402


def doc(n_vnets: int = 50, per_vnet: int = 20) -> dict:
    vnets, tables, nats, pips = [], [], [], []
    for i in range(n_vnets):
        nats.append({"name": f"nat-{i}", "public_ip_addresses": [f"pip-{i}"]})
        pips.append({"name": f"pip-{i}"})
        subnets = []
        for j in range(per_vnet):
            tables.append({"name": f"rt-{i}-{j}",
                           "routes": [{"name": "none", "address_prefix": "0.0.0.0/0", "next_hop_type": "None"}]})
            subnets.append({"name": f"s{j}", "address_prefix": f"10.{i}.{j}.0/24", "route_table": f"rt-{i}-{j}",
                            "nat_gateway": f"nat-{i}"})
        vnets.append({"name": f"v{i}", "address_space": [f"10.{i}.0.0/16"], "subnets": subnets})
    return {"name": "lists", "location": "westeurope", "resource_group": "rg1", "virtual_networks": vnets,
            "route_tables": tables, "nat_gateways": nats, "public_ip_addresses": pips}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vnetlab-bench-") as home:
        topo = Lab.open(home).up(Topology.model_validate(doc()), "sim")
        for kind, items in ((ROUTE_TABLES, topo.route_tables), (NAT_GATEWAYS, topo.nat_gateways)):
            for _ in range(3):
                t0 = time.perf_counter()
                one_by_one = [kind.to_wire(topo, x) for x in items]
                t1 = time.perf_counter()
                listed = list(kind.wires(topo, items))
                t2 = time.perf_counter()
                assert listed == one_by_one
                print(f"{len(items)} {kind.type} on {sum(len(v.subnets) for v in topo.virtual_networks)} subnets: "
                      f"each as its own GET {t1 - t0:.3f} s, as a list {t2 - t1:.3f} s ({(t1 - t0) / (t2 - t1):.1f}x)")


if __name__ == "__main__":
    main()
