"""Differential test: random flows over a generated lab, the engine's verdict against the
verdict observed on the real kernel (netns backend), flow by flow."""

from __future__ import annotations

import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.lab import Lab
from vnetlab.model import Topology

import test_netns_backend
from netns_support import NETNS_MARKS, probe_against  # noqa: E402

pytestmark = NETNS_MARKS
lab = test_netns_backend.lab  # the fixture: teardown + leftovers check

ADDRS = ["*", "VirtualNetwork", "Internet"]
PORTS = ["*", "80", "53", "80-443", "22,443", "1000-2000"]


def generate(seed: int, n_vnets: int = 4, nsg_p: float = 0.4, hub: bool = False) -> dict:
    """Several VNets (peered 0-1, 1-2 both ways, 2-3 one way only: v1 is a hub between v0 and
    v2), random NSGs on subnets and NICs, a route table per VNet on the VM subnet: None /
    VirtualAppliance to the NVA of the same VNet or of a peered VNet (the hub's, with or without
    IP forwarding) / Internet / VnetLocal, for VNet prefixes, 192.168/16, 0.0.0.0/0 and the
    internet test range (NVA-forwarded traffic to the internet); hub-and-spoke routes through
    the hub's NVA in both spokes or in one only; peerings with or without virtual network
    access and forwarded traffic; apps with and without VNet integration and route-all.
    ``hub``: a working hub (its NVA forwards, peerings allow access, both spokes route the other
    spoke through it), only forwarded traffic left to chance."""
    rnd = random.Random(seed)
    vnets, nsgs, rts, vms, plans, apps = [], [], [], [], [], []
    peers_of: dict[int, list[int]] = {i: [] for i in range(n_vnets)}
    for i in range(n_vnets):
        peerings = []
        if i > 0:
            peerings.append({"name": f"to-v{i-1}", "remote_virtual_network": f"v{i-1}",
                             "allow_virtual_network_access": hub or rnd.random() > 0.15,
                             "allow_forwarded_traffic": rnd.random() < 0.6})
        if i < n_vnets - 1 and i + 1 != 3:
            peerings.append({"name": f"to-v{i+1}", "remote_virtual_network": f"v{i+1}",
                             "allow_forwarded_traffic": rnd.random() < 0.6})
            peers_of[i].append(i + 1)
            peers_of[i + 1].append(i)
        vnets.append({"name": f"v{i}", "address_space": [f"10.{i}.0.0/16"], "peerings": peerings, "subnets": [
            {"name": "s0", "address_prefix": f"10.{i}.0.0/24", "route_table": f"rt{i}"},
            {"name": "s1", "address_prefix": f"10.{i}.1.0/24"},
            {"name": "int", "address_prefix": f"10.{i}.2.0/26", "delegations": ["Microsoft.Web/serverFarms"]}]})
        for k in (0, 1, 2):
            if rnd.random() < nsg_p:
                vnets[-1]["subnets"][k]["network_security_group"] = f"nsg{rnd.randrange(3)}"
        # VMs: two in s0, an NVA in s1
        for j in range(2):
            services = [{"port": 80}] + ([{"port": 53, "protocol": "Udp"}] if rnd.random() < 0.7 else []) \
                + ([{"port": 443}] if rnd.random() < 0.5 else [])
            if j == 1 and i % 2 == 0:  # a real program of the user's, not the built-in responder
                services = services + [{"port": COMMAND_PORT, "command": COMMAND}]
            vm = {"name": f"vm{i}{j}", "subnet": f"v{i}/s0", "services": services}
            if j == 0:  # a secondary IP configuration (no random draw: the seeds' labs stay as they were)
                vm["secondary_ip_addresses"] = [secondary_ip(i)]
            if rnd.random() < 0.75 * nsg_p:
                vm["network_security_group"] = f"nsg{rnd.randrange(3)}"
            vms.append(vm)
        nva = {"name": f"nva{i}", "subnet": f"v{i}/s1", "private_ip_address": f"10.{i}.1.4",
               "enable_ip_forwarding": (hub and i == 1) or rnd.random() < (0.85 if i == 1 else 0.6),
               "services": [{"port": 22}]}
        vms.append(nva)
    hub_spoke = 0.0 if hub else rnd.random()  # spoke -> hub NVA -> other spoke: both ways, one way, none
    for i in range(n_vnets):
        routes = []
        if i in (0, 2) and hub_spoke < 0.75:
            if i == 0 or hub_spoke < 0.5:
                routes.append({"name": "via-hub", "address_prefix": f"10.{2 - i}.0.0/16",
                               "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.1.1.4"})
        for r in range(rnd.randrange(0, 4)):
            other = rnd.randrange(n_vnets)
            prefix = rnd.choice([f"10.{other}.0.0/16", f"10.{other}.1.0/24", f"10.{other}.2.0/26",
                                 "192.168.0.0/16", f"10.{i}.1.0/24", "0.0.0.0/0", "203.0.113.0/24"])
            hop = rnd.choice(["None", "VirtualAppliance", "VirtualAppliance", "VirtualAppliance", "Internet",
                              "VnetLocal"])
            route = {"name": f"r{r}", "address_prefix": prefix, "next_hop_type": hop}
            if hop == "VirtualAppliance":  # this VNet's NVA or a peer's (e.g. the hub's)
                route["next_hop_ip_address"] = f"10.{rnd.choice([i] + peers_of[i])}.1.4"
            if prefix not in {x["address_prefix"] for x in routes}:
                routes.append(route)
        rts.append({"name": f"rt{i}", "routes": routes})
    for n in range(3):
        rules = []
        for p, direction in enumerate(rnd.choice(["Inbound", "Outbound"]) for _ in range(rnd.randrange(1, 5))):
            def addr():
                x = rnd.random()
                if x < 0.5:
                    return rnd.choice(ADDRS)
                v = rnd.randrange(n_vnets)
                return rnd.choice([f"10.{v}.0.0/16", f"10.{v}.0.0/24", f"10.{v}.2.0/26", f"10.{v}.0.4"])
            rules.append({"name": f"rule{p}", "priority": 100 + 10 * p, "direction": direction,
                          "access": rnd.choice(["Allow", "Deny"]), "protocol": rnd.choice(["Tcp", "Udp", "Icmp", "*"]),
                          "source_address_prefix": addr(), "destination_address_prefix": addr(),
                          "source_port_range": "*", "destination_port_range": rnd.choice(PORTS)})
        nsgs.append({"name": f"nsg{n}", "security_rules": rules})
    # apps: not integrated, integrated, integrated + route-all
    for a, (vnet_i, mode) in enumerate([(0, "none"), (1, "int"), (2, "all"), (0, "int")]):
        plans.append({"name": f"plan{a}", "sku": "P1v3"})
        app = {"name": f"app{a}", "plan": f"plan{a}"}
        if mode != "none":
            app["vnet_integration"] = f"v{vnet_i}/int"
            app["vnet_route_all_enabled"] = mode == "all"
        apps.append(app)
    # a plan of several instances with several apps integrated in one subnet (they share each
    # instance's integration address), one of them maybe with route-all, and one not integrated
    shared_vnet = rnd.randrange(n_vnets)
    plans.append({"name": "shared", "sku": "P1v3", "instances": rnd.choice([2, 3])})
    for a in range(rnd.choice([2, 3])):
        apps.append({"name": f"sh{a}", "plan": "shared", "vnet_integration": f"v{shared_vnet}/int",
                     "vnet_route_all_enabled": a == 0 and rnd.random() < 0.5})
    apps.append({"name": "shx", "plan": "shared"})
    doc = {"name": f"diff{seed}", "virtual_networks": vnets, "network_security_groups": nsgs,
           "route_tables": rts, "virtual_machines": vms, "app_service_plans": plans, "web_apps": apps}
    return with_outbound(doc, n_vnets)


def with_outbound(doc: dict, n_vnets: int) -> dict:
    """Every way out to the internet (no random draw: the seeds' labs stay as they were otherwise):
    the last VNet's VM subnet and integration subnet behind a NAT gateway (no ICMP through it, apps
    there leave by it only with Route All), the first VNet's NVA subnet private (what that NVA
    forwards to the internet has no way out), the first VM of the VNet before the last with a
    public IP."""
    last = n_vnets - 1
    subnets = {s["name"]: s for s in doc["virtual_networks"][last]["subnets"]}
    subnets["s0"]["nat_gateway"] = subnets["int"]["nat_gateway"] = "natgw"
    next(s for s in doc["virtual_networks"][0]["subnets"] if s["name"] == "s1")["default_outbound_access"] = False
    doc["public_ip_addresses"] = [{"name": "pip-nat"}, {"name": "pip-vm"}]
    doc["nat_gateways"] = [{"name": "natgw", "public_ip_addresses": ["pip-nat"]}]
    next(vm for vm in doc["virtual_machines"] if vm["name"] == f"vm{last - 1}0")["public_ip_address"] = "pip-vm"
    return doc


COMMAND_PORT = 8080


def secondary_ip(vnet: int) -> str:
    """The address of vm{vnet}0's secondary IP configuration."""
    return f"10.{vnet}.0.200"


COMMAND = f"python3 -m http.server {COMMAND_PORT} --bind 0.0.0.0"


def flows(lab: Lab, seed: int, count: int, routed: float = 0.0) -> list[tuple[str, str, str, int | None]]:
    """Random flows; a share ``routed`` of them from the VM subnets (the ones with route tables)
    to other VNets and the internet, where next hops, NVAs and peerings matter."""
    rnd = random.Random(seed * 7919)
    net = lab.network()
    eps = net.endpoints()
    sources = [e.name for e in eps] + instances(lab)
    targets = [str(e.ip) for e in eps if e.kind == "vm" or e.subnet_ref]
    targets += [h.ip for h in lab.topology().internet_hosts]
    routed_src = [e for e in eps if e.kind == "vm" and e.subnet_ref and e.subnet_ref.endswith("/s0")]
    out = []
    for _ in range(count):
        src = rnd.choice(sources)
        x = rnd.random()
        if rnd.random() < routed and routed_src:
            e = rnd.choice(routed_src)
            src = e.name
            others = [str(t.ip) for t in eps if t.kind == "vm" and t.subnet_ref
                      and t.subnet_ref.split("/")[0] != e.subnet_ref.split("/")[0]]
            dst = rnd.choice(others + [h.ip for h in lab.topology().internet_hosts] * 3)
        elif x < 0.7:
            dst = rnd.choice(targets)
        elif x < 0.85:
            dst = f"10.{rnd.randrange(5)}.{rnd.randrange(3)}.{rnd.randrange(100, 120)}"  # nobody there
        elif x < 0.93:
            dst = rnd.choice(["192.168.7.7", "203.0.113.77"])
        else:
            dst = rnd.choice(["198.18.0.5", lab.topology().internet_hosts[0].ip])
        if dst == str(net.endpoint(src.split("#")[0]).ip):
            continue
        proto, port = rnd.choice([("tcp", 80), ("tcp", 80), ("tcp", 443), ("tcp", 22), ("udp", 53), ("icmp", None)])
        out.append((src, proto, dst, port))
    # every instance of the apps sharing a plan, towards the VMs (their shared address at work)
    vms = [str(e.ip) for e in eps if e.kind == "vm"]
    for src in instances(lab) + [f"{s}#0" for s in {i.split("#")[0] for i in instances(lab)}]:
        for _ in range(3):
            proto, port = rnd.choice([("tcp", 80), ("tcp", 80), ("udp", 53), ("icmp", None)])
            out.append((src, proto, rnd.choice(vms), port))
    # every VM towards the secondary addresses (answered by the VM holding them, filtered by the
    # NSGs as that address)
    secondaries = [ip for nic in lab.topology().network_interfaces for ip in nic.addresses[1:]]
    for e in eps:
        if e.kind == "vm":
            out += [(e.name, "tcp", ip, 80) for ip in secondaries if ip not in e.nic.addresses]
    # every VM of the VNets towards the services started with command:
    for vm in lab.topology().virtual_machines:
        if any(svc.command for svc in vm.services):
            nic_ip = str(net.endpoint(vm.name).ip)
            out += [(e.name, "tcp", nic_ip, COMMAND_PORT) for e in eps if e.kind == "vm" and e.name != vm.name]
    return out


def instances(lab: Lab) -> list[str]:
    """``app#k`` for the other instances of multi-instance plans: probed from that instance's
    sandbox, checked against the app's trace (the generated NSGs name whole subnets, never one
    instance's integration address, so every instance gets the same verdict)."""
    topo = lab.topology()
    return [f"{app.name}#{k}" for app in topo.web_apps
            for k in range(1, topo.find("app_service_plans", app.plan).instances)]


def coverage(fl, traces) -> dict[str, int]:
    """How many flows exercised each path the differential test must cover (from the engine's steps)."""
    out = dict.fromkeys(COVERAGE, 0)
    for f, t in zip(fl, traces, strict=True):
        kinds = [s.kind for s in t.steps]
        for i, st in enumerate(t.steps):
            if st.kind == "VirtualAppliance" and i > 0 and t.steps[i - 1].kind == "VNetPeering" \
                    or st.kind == "VirtualAppliance" and "VNetPeering" in kinds[:i] and st.action == "Forwarded":
                out["via NVA in a peered VNet"] += 1
                break
        internet = bool(t.steps) and t.steps[-1].kind == "Deliver" and bool(t.steps[-1].detail.internet)
        out["internet host answered"] += internet
        out["NVA to the internet"] += internet and "VirtualAppliance" in kinds
        out["forwarded traffic refused"] += t.reason == "ForwardedTrafficNotAllowed"
        out["no way out to the internet"] += t.reason in ("NoOutboundAccess", "NatGatewayNoIcmp")
        # apps sharing a plan instance's integration address, answered inside the VNets
        shared = f[0].startswith("sh") and not f[0].startswith("shx") and t.verdict == "Connected" \
            and f[2].startswith("10.")
        out["shared plan into a VNet"] += shared
        out["shared plan, instance > 0"] += shared and "#" in f[0]
        out["service started with command: answered"] += f[3] == COMMAND_PORT and t.verdict == "Connected"
        out["secondary address answered"] += t.verdict == "Connected" and bool(t.steps) \
            and t.steps[-1].kind == "Deliver" and t.steps[-1].detail.ip_configuration not in (None, "ipconfig1")
    return out


COVERAGE = ("via NVA in a peered VNet", "NVA to the internet", "forwarded traffic refused", "internet host answered",
            "shared plan into a VNet", "shared plan, instance > 0", "service started with command: answered",
            "secondary address answered", "no way out to the internet")
# What each seed must exercise: seeds 10, 15, 17, 23 were chosen so that flows go through the hub's
# NVA, from NVAs to the internet and into peerings that refuse forwarded traffic.
EVERY_SEED = {"via NVA in a peered VNet", "internet host answered", "shared plan into a VNet",
              "shared plan, instance > 0", "service started with command: answered", "secondary address answered"}
MUST_COVER = {1: EVERY_SEED, 2: EVERY_SEED | {"forwarded traffic refused"},
              10: EVERY_SEED | {"forwarded traffic refused"}, 15: set(COVERAGE), 17: set(COVERAGE), 23: set(COVERAGE)}


@pytest.mark.parametrize("seed,count,routed", [(1, 230, 0.0), (2, 130, 0.0), (10, 200, 0.6), (15, 200, 0.6),
                                               (17, 200, 0.6), (23, 200, 0.6)])
def test_engine_equals_kernel(lab, seed, count, routed, capsys):
    lab.up(Topology.model_validate(generate(seed, nsg_p=0.4 if not routed else 0.15, hub=seed % 2 == 1)), "netns")
    fl = flows(lab, seed, count, routed)
    expected = [lab.trace(s.split("#")[0], d, p, proto.capitalize()) for s, proto, d, p in fl]
    by_src: dict[str, list[int]] = defaultdict(list)
    for i, (s, _, _, _) in enumerate(fl):
        by_src[s].append(i)
    got: list[str | None] = [None] * len(fl)

    def run(src: str) -> None:
        idx = by_src[src]
        res = probe_against(nb.namespace_of(lab, src), [(fl[i][1], fl[i][2], fl[i][3]) for i in idx],
                            [expected[i].verdict for i in idx])
        for i, v in zip(idx, res, strict=True):
            got[i] = v

    with ThreadPoolExecutor(max_workers=len(by_src)) as ex:
        list(ex.map(run, by_src))
    bad = [(fl[i], expected[i], got[i]) for i in range(len(fl)) if expected[i].verdict != got[i]]
    with capsys.disabled():
        for f, tr, real in bad[:15]:
            print(f"  MISMATCH {f}: engine {tr.verdict} ({tr.reason}) real {real}")
            for st in tr.steps:
                print("     ", {k: v for k, v in st.to_dict().items() if k != "resource_id"})
    assert not bad, f"{len(bad)} of {len(fl)} flows differ"
    covered = coverage(fl, expected)
    assert {k for k, n in covered.items() if n} >= MUST_COVER[seed], covered
