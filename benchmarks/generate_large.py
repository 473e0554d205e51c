"""The issue-8 large lab as one YAML file: 50 VNets x 20 subnets, each subnet with its own
200-rule NSG (1,000 NSGs), each VNet peered with its two neighbours (a chain), 2,000 VMs and
100 web apps; about 200,000 lines.

    .venv/bin/python benchmarks/generate_large.py large.yaml [--vnets 50 --subnets 20 --rules 200 --vms 2000 --apps 100]

``generate_doc`` gives the document (a dict, as the YAML file holds it) for in-process use.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import yaml
from generate import nsg_rules


def _peerings(v: int, vnets: int) -> list[dict]:
    return [{"name": f"to-v{k}", "remote_virtual_network": f"v{k}"} for k in (v - 1, v + 1) if 0 <= k < vnets]


def generate_doc(vnets: int = 50, subnets: int = 20, rules: int = 200, vms: int = 2000, apps: int = 100,
                 seed: int = 8) -> dict:
    rng = random.Random(seed)
    doc: dict = {"name": "large", "virtual_networks": [], "network_security_groups": [], "virtual_machines": [],
                 "app_service_plans": [], "web_apps": []}
    for v in range(vnets):
        sn = []
        for j in range(subnets):
            nsg = f"nsg-v{v}-s{j}"
            subnet = {"name": f"s{j}", "address_prefix": f"10.{v}.{j}.0/24", "network_security_group": nsg}
            if j == subnets - 1:
                subnet.update(name="integration", delegations=["Microsoft.Web/serverFarms"])
            sn.append(subnet)
            doc["network_security_groups"].append({"name": nsg, "security_rules": nsg_rules(rng, rules, v, vnets=vnets, alternate=True)})
        doc["virtual_networks"].append({"name": f"v{v}", "address_space": [f"10.{v}.0.0/16"], "subnets": sn,
                                        "peerings": _peerings(v, vnets)})
    for i in range(vms):
        v, j = i % vnets, (i // vnets) % (subnets - 1)
        doc["virtual_machines"].append({"name": f"vm{i}", "subnet": f"v{v}/s{j}",
                                        "services": [{"port": 80}, {"port": 22}]})
    for p in range((apps + 1) // 2):
        doc["app_service_plans"].append({"name": f"plan{p}", "sku": "P1v3", "instances": 1})
    for a in range(apps):
        plan = a // 2
        doc["web_apps"].append({"name": f"app{a}", "plan": f"plan{plan}",
                                "vnet_integration": f"v{plan % vnets}/integration",
                                "vnet_route_all_enabled": a % 3 == 0})
    return doc


class _Rule(dict):
    """A security rule, written on one line (flow style), as people write long rule lists."""


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    pass


_Dumper.add_representer(_Rule, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def write(path: str | Path, **shape) -> int:
    """Write the lab to ``path``, one line per security rule; returns its number of lines."""
    doc = generate_doc(**shape)
    for nsg in doc["network_security_groups"]:
        nsg["security_rules"] = [_Rule(r) for r in nsg["security_rules"]]
    text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1 << 16)
    Path(path).write_text(text)
    return text.count("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path")
    for name, default in (("vnets", 50), ("subnets", 20), ("rules", 200), ("vms", 2000), ("apps", 100)):
        ap.add_argument(f"--{name}", type=int, default=default)
    args = ap.parse_args()
    lines = write(args.path, vnets=args.vnets, subnets=args.subnets, rules=args.rules, vms=args.vms, apps=args.apps)
    print(f"{args.path}: {lines} lines")


if __name__ == "__main__":
    main()
