"""A generated lab for benchmarks: hub-and-spoke VNets, many subnets, VMs, NSGs and web apps."""

from __future__ import annotations

import random

from vnetlab.lab import allocate_dynamic_addresses
from vnetlab.model import Topology


def nsg_rules(rng: random.Random, count: int, vnet_index: int, vnets: int = 50,
              alternate: bool = False) -> list[dict]:
    """``count`` rules mixing hosts, /24s of other VNets, port ranges and the VirtualNetwork tag;
    ``alternate`` gives Outbound and Inbound in turn instead of at random."""
    rules = []
    for i in range(count):
        kind = rng.random()
        direction = ("Inbound" if i % 2 else "Outbound") if alternate else rng.choice(["Inbound", "Outbound"])
        rule = {"name": f"r{i}", "priority": 100 + i, "direction": direction,
                "access": rng.choice(["Allow", "Deny"]), "protocol": rng.choice(["Tcp", "Udp", "*"])}
        if kind < 0.5:  # a host or a /24 in this VNet, one port
            rule["destination_address_prefix"] = f"10.{vnet_index}.{rng.randrange(20)}.{rng.randrange(4, 250)}"
            rule["destination_port_range"] = str(rng.randrange(1024, 60000))
        elif kind < 0.8:
            rule["source_address_prefixes"] = [f"10.{rng.randrange(vnets)}.{rng.randrange(20)}.0/24" for _ in range(3)]
            rule["destination_port_ranges"] = [str(rng.randrange(1024, 60000)) for _ in range(2)]
        else:
            lo = rng.randrange(2000, 60000)
            rule["destination_port_range"] = f"{lo}-{lo + rng.randrange(1, 50)}"
            rule["source_address_prefix"] = "VirtualNetwork"
        rules.append(rule)
    return rules


def generate_doc(vnets: int = 50, subnets: int = 20, vms: int = 2000, apps: int = 100, rules: int = 20,
                 seed: int = 7) -> dict:
    """The lab as its YAML file holds it (VMs with inline NICs, addresses dynamic)."""
    rng = random.Random(seed)
    doc = {"name": "bench", "virtual_networks": [], "network_security_groups": [], "virtual_machines": [],
           "app_service_plans": [], "web_apps": []}
    for v in range(vnets):
        sn = [{"name": f"s{j}", "address_prefix": f"10.{v}.{j}.0/24", "network_security_group": f"nsg{v}"}
              for j in range(subnets - 1)]
        sn.append({"name": "integration", "address_prefix": f"10.{v}.{subnets - 1}.0/24",
                   "delegations": ["Microsoft.Web/serverFarms"], "network_security_group": f"nsg{v}"})
        peers = ([{"name": f"to-v{k}", "remote_virtual_network": f"v{k}"} for k in range(1, vnets)] if v == 0
                 else [{"name": "to-hub", "remote_virtual_network": "v0"}])
        doc["virtual_networks"].append({"name": f"v{v}", "address_space": [f"10.{v}.0.0/16"], "subnets": sn,
                                        "peerings": peers})
        doc["network_security_groups"].append({"name": f"nsg{v}", "security_rules": nsg_rules(rng, rules, v)})
    for i in range(vms):
        v, j = i % vnets, (i // vnets) % (subnets - 1)
        doc["virtual_machines"].append({"name": f"vm{i}", "subnet": f"v{v}/s{j}",
                                        "services": [{"port": 80}, {"port": 22}]})
    for p in range(apps // 2):
        doc["app_service_plans"].append({"name": f"plan{p}", "sku": "P1v3", "instances": 1})
    for a in range(apps):
        plan = a // 2
        doc["web_apps"].append({"name": f"app{a}", "plan": f"plan{plan}",
                                "vnet_integration": f"v{plan % vnets}/integration", "vnet_route_all_enabled": a % 3 == 0})
    return doc


def generate(vnets: int = 50, subnets: int = 20, vms: int = 2000, apps: int = 100, rules: int = 20,
             seed: int = 7) -> Topology:
    """The lab as a model, with its dynamic addresses allocated."""
    topo = Topology.model_validate(generate_doc(vnets, subnets, vms, apps, rules, seed))
    allocate_dynamic_addresses(topo, None)
    return topo
