"""The netns backend end to end: the field note, observable by observable, on a real kernel,
plus NSG / UDR / NVA / peering / route-all scenarios. Expected values come from the model and
the engine (``lab.network()``, ``lab.trace``), never typed in where the model can give them.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import Namespace, kernel
from vnetlab.backends.netns import exec as nx
from vnetlab.backends.netns.apply import K_PROC, pid_alive
from vnetlab.backends.netns.plan import lab_id_for, plan
from vnetlab.engine.app_service import VNET_MTU
from vnetlab.lab import Lab
from vnetlab.model import Topology
from vnetlab.model.nsg import SecurityRule
from vnetlab.model.routes import Route as UserRoute
from vnetlab.topology import load
from netns_support import NETNS_MARKS, wait_listening  # noqa: E402

pytestmark = NETNS_MARKS

ROOT = Path(__file__).resolve().parents[1]
NOTE = ROOT / "examples" / "app-service-vnet-integration.yaml"


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    import json
    return {l["ifname"] for l in json.loads(out or "[]")}


@pytest.fixture
def lab(tmp_path):
    links_before = _host_links()
    lab = Lab.open(tmp_path / "home")
    prefix = f"vl{lab_id_for(lab.home)}-"
    pids: list[int] = []
    lab.pids = pids
    try:
        yield lab
    finally:
        pids += [d["pid"] for _, _, d in lab.store.records(K_PROC) if d.get("pid")]
        lab.down()
        left = [n for n in kernel.netns_list() if n.startswith(prefix)]
        assert not left, left
        assert not [p for p in Path("/etc/netns").glob(prefix + "*")] if Path("/etc/netns").exists() else True
        assert not [p for p in pids if pid_alive(p)]
        assert lab.store.records() == []
        assert _host_links() == links_before




def sandbox(lab: Lab, name: str):
    return lab.network().sandbox(lab.topology().find("web_apps", name))


def vm_ip(lab: Lab, name: str) -> str:
    return str(lab.network().endpoint(name).ip)


def real(lab: Lab, src: str, dst: str, port: int | None, proto: str) -> tuple[str, str]:
    """(engine verdict, real verdict)."""
    tr = lab.trace(src, dst, port, proto).to_dict()
    return tr["verdict"], nb.probe(lab, tr)["verdict"]


# -- the note --------------------------------------------------------------------------------------
def test_note_observables(lab):
    t0 = time.perf_counter()
    lab.up(load(NOTE), "netns")
    up_s = time.perf_counter() - t0
    app_ns, vm_ns = nb.namespace_of(lab, "app1"), nb.namespace_of(lab, "rg1vm1")
    vm = vm_ip(lab, "rg1vm1")

    # before integration: default via 172.16.2.1 and 172.16.2.0/24 only; ping loses everything
    before = nb.route_n(lab, "app1")
    assert before == sandbox(lab, "app1").route_n()
    rows = [l.split()[:4] for l in before.splitlines()[2:]]
    assert rows == [["0.0.0.0", "172.16.2.1", "0.0.0.0", "UG"], ["172.16.2.0", "0.0.0.0", "255.255.255.0", "U"]]
    p = nx.run_in(app_ns, ["ping", "-c", "2", "-i", "0.2", "-W", "1", vm], timeout=10)
    assert "2 packets transmitted, 0 received, 100% packet loss" in p.stdout, p.stdout
    assert lab.trace("app1", vm, None, "Icmp").verdict == "TimedOut"

    # az webapp vnet-integration add: the live sandbox gets its vnet interface, nothing restarts
    vm_pid = next(d["pid"] for _, n, d in lab.store.records(K_PROC) if n.startswith(vm_ns))
    lab.integrate("app1", "vnet1/integration")
    assert pid_alive(vm_pid) and next(d["pid"] for _, n, d in lab.store.records(K_PROC)
                                      if n.startswith(vm_ns)) == vm_pid
    sb = sandbox(lab, "app1")
    after = nb.route_n(lab, "app1")
    assert after == sb.route_n()                       # byte for byte
    note_rows = [("0.0.0.0", "169.254.129.1", "0.0.0.0", "UG", "eth0"),
                 ("10.0.0.0", "169.254.254.1", "255.255.255.0", "UG", "vnet"),
                 ("10.0.0.0", "169.254.254.1", "255.0.0.0", "UG", "vnet"),
                 ("169.254.129.0", "0.0.0.0", "255.255.255.0", "U", "eth0"),
                 ("169.254.254.0", "0.0.0.0", "255.255.255.0", "U", "vnet"),
                 ("172.16.0.0", "169.254.254.1", "255.240.0.0", "UG", "vnet"),
                 ("192.168.0.0", "169.254.254.1", "255.255.0.0", "UG", "vnet")]
    got = [tuple(l.split()[:4]) + ("vnet" if l.split()[7].startswith("vnet") else l.split()[7],)
           for l in after.splitlines()[2:]]
    assert got == note_rows
    link = nx.run_in(app_ns, ["ip", "-o", "link", "show", sb.vnet_iface]).stdout
    assert f"mtu {VNET_MTU}" in link

    # ping: ttl=63, the VM sees the integration address
    integ = str(sb.integration_ip)
    cap = nx.capture(vm_ns, "icmp", 2, iface="eth0")
    p = nx.run_in(app_ns, ["ping", "-c", "1", "-W", "2", vm], timeout=10)
    assert "ttl=63" in p.stdout and " 0% packet loss" in p.stdout, p.stdout
    lines = cap.lines(timeout=5)
    assert any(f"IP {integ} > {vm}: ICMP echo request" in l for l in lines), lines
    assert any(f"IP {vm} > {integ}: ICMP echo reply" in l for l in lines), lines

    # index.php: /check says Connection OK; the SYN carries mss 1418 from the integration address
    cap = nx.capture(vm_ns, "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0", 1, iface="eth0")
    body = nx.run_in(app_ns, ["curl", "-sS", "-m", "5", f"http://127.0.0.1/check?host={vm}&port=80"],
                     timeout=10).stdout
    assert body == "Connection OK"
    syn = cap.lines(timeout=5)
    assert syn and re.search(rf"IP {re.escape(integ)}\.\d+ > {re.escape(vm)}\.80: Flags \[S\]", syn[0]), syn
    assert f"mss {VNET_MTU - 40}" in syn[0], syn

    # the opposite direction: curl from the VM to the integration address is refused
    for port, url in ((80, f"http://{integ}:80/"), (443, f"https://{integ}/")):
        p = nx.run_in(vm_ns, ["curl", "-sS", "-k", "-m", "5", url], timeout=10)
        assert p.returncode == 7 and f"Failed to connect to {integ} port {port}" in p.stderr, p.stderr
        assert real(lab, "rg1vm1", integ, port, "Tcp") == ("Refused", "Refused")
    assert up_s < 5


# -- scenarios -------------------------------------------------------------------------------------
def scenario() -> dict:
    """hub-spoke: spoke1 <-> hub <-> spoke2 (no spoke1-spoke2 peering); an NVA in spoke1."""
    return {
        "name": "scen",
        "virtual_networks": [
            {"name": "spoke1", "address_space": ["10.1.0.0/16"], "subnets": [
                {"name": "vms", "address_prefix": "10.1.1.0/24", "route_table": "rt-vms"},
                {"name": "nva", "address_prefix": "10.1.2.0/24"},
                {"name": "other", "address_prefix": "10.1.3.0/24", "network_security_group": "nsg-other"},
                {"name": "integration", "address_prefix": "10.1.4.0/26", "network_security_group": "nsg-int",
                 "delegations": ["Microsoft.Web/serverFarms"]}],
             "peerings": [{"name": "to-hub", "remote_virtual_network": "hub"}]},
            {"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [{"name": "s", "address_prefix": "10.0.1.0/24"}],
             "peerings": [{"name": "to-s1", "remote_virtual_network": "spoke1"},
                          {"name": "to-s2", "remote_virtual_network": "spoke2"}]},
            {"name": "spoke2", "address_space": ["10.2.0.0/16"], "subnets": [{"name": "s", "address_prefix": "10.2.1.0/24"}],
             "peerings": [{"name": "to-hub", "remote_virtual_network": "hub"}]},
        ],
        "network_security_groups": [
            {"name": "nsg-other", "security_rules": []},
            {"name": "nsg-int", "security_rules": []}],
        "route_tables": [{"name": "rt-vms", "routes": []}],
        "virtual_machines": [
            {"name": "vm1", "subnet": "spoke1/vms", "services": [{"port": 80}]},
            {"name": "nva", "subnet": "spoke1/nva", "services": [{"port": 22}]},
            {"name": "vm3", "subnet": "spoke1/other", "services": [{"port": 80}, {"port": 53, "protocol": "Udp"}]},
            {"name": "hubvm", "subnet": "hub/s", "services": [{"port": 80}]},
            {"name": "s2vm", "subnet": "spoke2/s", "services": [{"port": 80}]},
        ],
        "app_service_plans": [{"name": "plan1", "sku": "P1v3"}],
        "web_apps": [{"name": "app1", "plan": "plan1", "vnet_integration": "spoke1/integration"}],
    }


def _set(lab: Lab, fn) -> None:
    lab.change(fn, create=False)


def test_scenarios(lab):
    lab.up(Topology.model_validate(scenario()), "netns")
    for ns_name in ("vm1", "vm3", "hubvm", "s2vm"):
        wait_listening(nb.namespace_of(lab, ns_name), 80)
    vm3, hubvm, s2vm = vm_ip(lab, "vm3"), vm_ip(lab, "hubvm"), vm_ip(lab, "s2vm")
    nva_ip = vm_ip(lab, "nva")
    public = str(lab.topology().internet_hosts[0].ip)
    # baseline
    assert real(lab, "vm1", vm3, 80, "Tcp") == ("Connected", "Connected")
    assert real(lab, "vm3", vm3.rsplit(".", 1)[0] + ".99", 80, "Tcp") == ("TimedOut", "TimedOut")

    # NSG deny -> timeout (and UDP still allowed)
    def deny80(t):
        t.find("network_security_groups", "nsg-other").security_rules = [SecurityRule(
            name="deny-80", priority=100, direction="Inbound", access="Deny", protocol="Tcp",
            source_address_prefix="*", destination_address_prefix="*", destination_port_range="80")]
    vm3_pid = next(d["pid"] for _, n, d in lab.store.records(K_PROC) if "vm3" in n)
    _set(lab, deny80)
    assert real(lab, "vm1", vm3, 80, "Tcp") == ("TimedOut", "TimedOut")
    assert real(lab, "vm1", vm3, 53, "Udp") == ("Connected", "Connected")
    assert pid_alive(vm3_pid)  # an NSG change does not restart anything

    # peering is not transitive: spoke1 -> hub works, spoke1 -> spoke2 does not
    assert real(lab, "vm1", hubvm, 80, "Tcp") == ("Connected", "Connected")
    assert real(lab, "vm1", s2vm, 80, "Tcp") == ("TimedOut", "TimedOut")
    assert real(lab, "hubvm", s2vm, 80, "Tcp") == ("Connected", "Connected")

    # UDR None -> timeout
    def udr(hop_type, ip=None):
        def fn(t):
            r = {"name": "r1", "address_prefix": "10.0.0.0/16", "next_hop_type": hop_type}
            if ip:
                r["next_hop_ip_address"] = ip
            t.find("route_tables", "rt-vms").routes = [UserRoute(**r)]
        return fn
    _set(lab, udr("None"))
    assert real(lab, "vm1", hubvm, 80, "Tcp") == ("TimedOut", "TimedOut")

    # NVA: only with IP forwarding on its NIC
    _set(lab, udr("VirtualAppliance", nva_ip))
    assert real(lab, "vm1", hubvm, 80, "Tcp") == ("TimedOut", "TimedOut")
    assert lab.trace("vm1", hubvm, 80).reason == "NextHopNotForwarding"

    def forwarding(t):
        t.find("network_interfaces", "nvaVMNic").enable_ip_forwarding = True
    _set(lab, forwarding)
    cap = nx.capture(nb.namespace_of(lab, "nva"), f"tcp and dst host {hubvm}", 1, iface="eth0")
    assert real(lab, "vm1", hubvm, 80, "Tcp") == ("Connected", "Connected")
    assert cap.lines(timeout=5), "the flow did not cross the NVA"
    assert nx.run_in(nb.namespace_of(lab, "nva"), ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"

    # route-all: default route moves into the VNet, internet goes through the integration NSG
    app_ns = nb.namespace_of(lab, "app1")
    assert real(lab, "app1", public, 80, "Tcp") == ("Connected", "Connected")

    def deny_internet(t):
        t.find("network_security_groups", "nsg-int").security_rules = [SecurityRule(
            name="deny-internet", priority=100, direction="Outbound", access="Deny", protocol="*",
            source_address_prefix="*", destination_address_prefix="Internet", destination_port_range="*")]
    _set(lab, deny_internet)
    assert real(lab, "app1", public, 80, "Tcp") == ("Connected", "Connected")   # route-all off: eth0 path

    def route_all(on):
        def fn(t):
            t.find("web_apps", "app1").vnet_route_all_enabled = on
        return fn
    _set(lab, route_all(True))
    sb = sandbox(lab, "app1")
    default = [l for l in nb.route_n(lab, "app1").splitlines() if l.startswith("0.0.0.0")]
    assert default == [l for l in sb.route_n().splitlines() if l.startswith("0.0.0.0")]
    assert default[0].split()[1] == "169.254.254.1" and default[0].split()[7] == sb.vnet_iface
    assert real(lab, "app1", public, 80, "Tcp") == ("TimedOut", "TimedOut")
    _set(lab, lambda t: t.find("network_security_groups", "nsg-int").security_rules.clear())
    assert real(lab, "app1", public, 80, "Tcp") == ("Connected", "Connected")
    # the internet host sees the app's public outbound address
    host_ns = nb.namespace_of(lab, lab.topology().internet_hosts[0].name)
    cap = nx.capture(host_ns, "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0", 1, iface="eth0")
    nx.probe_tcp(app_ns, public, 80)
    assert f"IP {sb.outbound_ip}." in cap.lines(timeout=5)[0]
    _set(lab, route_all(False))
    assert nb.route_n(lab, "app1") == sandbox(lab, "app1").route_n()
    assert real(lab, "app1", public, 80, "Tcp") == ("Connected", "Connected")


def test_plan_is_pure_and_deterministic():
    topo = Topology.model_validate(scenario())
    from vnetlab.lab import allocate_dynamic_addresses
    allocate_dynamic_addresses(topo, None)
    a, b = plan(topo, "abcd"), plan(topo, "abcd")
    assert a == b
    assert all(n.name.startswith("vlabcd-") for n in a.namespaces)
    # hosts (VMs, app sandboxes) ask the engine's DNS servers; the lab's own namespaces ask none
    from vnetlab.backends.netns.plan import plan_with_names
    from vnetlab.engine import dns as edns
    from vnetlab.engine.network import LabView
    names, view = plan_with_names(topo, "abcd")[1], LabView(topo)
    hosts = {}
    for who, ns in names.endpoints.items():
        base = who.split("#")[0]
        if ":" not in who and (topo.find("virtual_machines", base) or topo.find("web_apps", base)):
            hosts[ns] = base
    assert hosts
    for n in a.namespaces:
        servers = [line.split()[1] for line in n.resolv_conf.splitlines() if line.startswith("nameserver ")]
        if n.name in hosts:
            assert servers == edns.dns_servers_for(view, hosts[n.name])
        else:
            assert n.resolv_conf == Namespace(name=n.name).resolv_conf
    # no fabric has a route out: every fabric default route is a blackhole or to the lab's internet ns
    for r in a.routes:
        if "-fab-" in r.ns and r.dest == "default" and r.type == "unicast":
            assert r.dev == "inet"


# -- hub and spoke: an NVA in a peered VNet, forwarded traffic, NVA to the internet -----------------
def hub_spoke() -> dict:
    """spoke1 <-> hub <-> spoke2; both spokes route each other (and spoke1 the internet) through
    the hub's NVA, which forwards."""
    def peering(name, remote, fwd=True):
        return {"name": name, "remote_virtual_network": remote, "allow_forwarded_traffic": fwd}
    return {
        "name": "hubspoke",
        "virtual_networks": [
            {"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [{"name": "nva", "address_prefix": "10.0.1.0/24"}],
             "peerings": [peering("to-s1", "spoke1"), peering("to-s2", "spoke2")]},
            {"name": "spoke1", "address_space": ["10.1.0.0/16"],
             "subnets": [{"name": "vms", "address_prefix": "10.1.1.0/24", "route_table": "rt-s1"}],
             "peerings": [peering("to-hub", "hub")]},
            {"name": "spoke2", "address_space": ["10.2.0.0/16"],
             "subnets": [{"name": "vms", "address_prefix": "10.2.1.0/24", "route_table": "rt-s2"}],
             "peerings": [peering("to-hub", "hub")]},
        ],
        "route_tables": [
            {"name": "rt-s1", "routes": [
                {"name": "s2", "address_prefix": "10.2.0.0/16", "next_hop_type": "VirtualAppliance",
                 "next_hop_ip_address": "10.0.1.4"},
                {"name": "internet", "address_prefix": "0.0.0.0/0", "next_hop_type": "VirtualAppliance",
                 "next_hop_ip_address": "10.0.1.4"}]},
            {"name": "rt-s2", "routes": [
                {"name": "s1", "address_prefix": "10.1.0.0/16", "next_hop_type": "VirtualAppliance",
                 "next_hop_ip_address": "10.0.1.4"}]},
        ],
        "virtual_machines": [
            {"name": "nva", "subnet": "hub/nva", "private_ip_address": "10.0.1.4", "enable_ip_forwarding": True,
             "services": [{"port": 22}]},
            {"name": "s1vm", "subnet": "spoke1/vms", "services": [{"port": 80}]},
            {"name": "s2vm", "subnet": "spoke2/vms", "services": [{"port": 80}, {"port": 53, "protocol": "Udp"}]},
        ],
    }


def test_hub_spoke_nva(lab):
    lab.up(Topology.model_validate(hub_spoke()), "netns")
    s2vm, nva_ns = vm_ip(lab, "s2vm"), nb.namespace_of(lab, "nva")
    public = lab.topology().internet_hosts[0]

    # spoke1 -> hub NVA -> spoke2, and back the same way: the NVA sees both directions
    cap = nx.capture(nva_ns, f"tcp and host {s2vm}", 4, iface="eth0")
    assert real(lab, "s1vm", s2vm, 80, "Tcp") == ("Connected", "Connected")
    lines = cap.lines(timeout=5)
    assert any(f"> {s2vm}.80: Flags [S]" in l for l in lines) and any(f"IP {s2vm}.80 >" in l for l in lines), lines
    for proto, port in (("Udp", 53), ("Icmp", None), ("Tcp", 81)):
        e, r = real(lab, "s1vm", s2vm, port, proto)
        assert e == r, (proto, port, e, r)

    # spoke1 -> hub NVA -> internet: SNAT to the NVA's public address (the engine's public_src)
    tr = lab.trace("s1vm", public.name, 80)
    assert tr.verdict == "Connected" and tr.source_ip_seen == str(lab.network().public_ip("network_interfaces",
                                                                                          "nvaVMNic"))
    host_ns = nb.namespace_of(lab, public.name)
    cap = nx.capture(host_ns, "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0", 1, iface="eth0")
    assert nb.probe(lab, tr.to_dict())["verdict"] == "Connected"
    assert f"IP {tr.source_ip_seen}." in cap.lines(timeout=5)[0]
    assert real(lab, "s1vm", public.ip, 22, "Tcp") == ("Refused", "Refused")   # the reset comes back too

    # spoke2 no longer accepts forwarded traffic from the hub: dropped on the way in (in place)
    nva_pid = next(d["pid"] for _, n, d in lab.store.records(K_PROC) if n.startswith(nva_ns))

    def forwarded(on):
        def fn(t):
            next(p for p in t.vnet("spoke2").peerings if p.name == "to-hub").allow_forwarded_traffic = on
        return fn
    _set(lab, forwarded(False))
    assert lab.trace("s1vm", s2vm, 80).reason == "ForwardedTrafficNotAllowed"
    assert real(lab, "s1vm", s2vm, 80, "Tcp") == ("TimedOut", "TimedOut")
    assert real(lab, "s1vm", public.ip, 80, "Tcp") == ("Connected", "Connected")   # not via spoke2
    assert pid_alive(nva_pid)
    # ... and spoke1 not either: now the replies from spoke2 are refused on the way back
    _set(lab, forwarded(True))
    _set(lab, lambda t: setattr(next(p for p in t.vnet("spoke1").peerings if p.name == "to-hub"),
                                "allow_forwarded_traffic", False))
    assert lab.trace("s1vm", s2vm, 80).reason == "ReturnPathDropped"
    assert real(lab, "s1vm", s2vm, 80, "Tcp") == ("TimedOut", "TimedOut")
    # The engine does not walk the return path of internet flows, so the internet's replies,
    # forwarded by the hub into spoke1, are not checked against spoke1's peering; the fabric
    # mirrors that (sources outside every VNet are not checked). If the engine starts checking,
    # this becomes ("TimedOut", "Connected") and the fabric's forwarded-traffic rule must follow.
    assert real(lab, "s1vm", public.ip, 80, "Tcp") == ("Connected", "Connected")

    # the NVA stops forwarding: the spokes lose each other
    _set(lab, lambda t: setattr(t.find("network_interfaces", "nvaVMNic"), "enable_ip_forwarding", False))
    assert real(lab, "s1vm", s2vm, 80, "Tcp") == ("TimedOut", "TimedOut")
    assert real(lab, "s1vm", public.ip, 80, "Tcp") == ("TimedOut", "TimedOut")


# -- apps sharing a plan instance ------------------------------------------------------------------
def shared_plan() -> dict:
    """Two apps of one plan (two instances) integrated in the same subnet: each instance's
    integration address is shared by both apps, as in Azure; a third app of the plan is not
    integrated."""
    return {
        "name": "shared",
        "virtual_networks": [{"name": "vnet1", "address_space": ["10.0.0.0/24"], "subnets": [
            {"name": "default", "address_prefix": "10.0.0.0/26"},
            {"name": "integration", "address_prefix": "10.0.0.128/26",
             "delegations": ["Microsoft.Web/serverFarms"]}]}],
        "virtual_machines": [{"name": "vm1", "subnet": "vnet1/default", "services": [{"port": 80}]}],
        "app_service_plans": [{"name": "plan1", "sku": "P1v3", "instances": 2}],
        "web_apps": [{"name": name, "plan": "plan1", **({"vnet_integration": "vnet1/integration"} if i < 2 else {})}
                     for i, name in enumerate(("appa", "appb", "appc"))],
    }


def test_apps_sharing_a_plan_instance_each_reach_the_vnet(lab):
    lab.up(Topology.model_validate(shared_plan()), "netns")
    vm = vm_ip(lab, "vm1")
    wait_listening(nb.namespace_of(lab, "vm1"), 80)
    a, b = sandbox(lab, "appa"), sandbox(lab, "appb")
    assert a.integration_ip == b.integration_ip  # the engine: one address per plan instance
    for app in ("appa", "appb"):
        for inst in (0, 1):
            ns = nb.namespace_of(lab, f"{app}#{inst}")
            verdicts = nx.probe_many(ns, [("tcp", vm, 80), ("icmp", vm, None)] * 3, 2.0)
            assert verdicts == ["Connected"] * 6, (app, inst, verdicts)
            body = nx.run_in(ns, ["curl", "-sS", "-m", "5", f"http://127.0.0.1/check?host={vm}&port=80"],
                             timeout=10).stdout
            assert body == "Connection OK", (app, inst)
        assert real(lab, app, vm, 80, "Tcp") == ("Connected", "Connected")
    # the VM sees each instance's integration address, whichever app sends
    ips = {str(lab.network().sandbox(lab.topology().find("web_apps", "appb"), i).integration_ip) for i in (0, 1)}
    cap = nx.capture(nb.namespace_of(lab, "vm1"), "icmp[icmptype] == icmp-echo", 2, iface="eth0")
    for inst in (0, 1):
        nx.run_in(nb.namespace_of(lab, f"appb#{inst}"), ["ping", "-c", "1", "-W", "2", vm], timeout=10)
    seen = {l.split()[2] for l in cap.lines(timeout=5)}
    assert seen == ips, seen
    # still refused from the VM, and the unintegrated app has no VNet path
    assert real(lab, "vm1", str(a.integration_ip), 80, "Tcp") == ("Refused", "Refused")
    assert nx.probe_tcp(nb.namespace_of(lab, "appc"), vm, 80) == "TimedOut"


def _ipv6_seen(ns: str) -> tuple[list[str], dict[str, int]]:
    """(every IPv6 address on the namespace's links but lo's ::1, its IPv6 packets and ICMPv6 messages sent)."""
    import json
    out = subprocess.run(["ip", "-n", ns, "-j", "-6", "addr", "show"], capture_output=True, text=True, check=True)
    addrs = [f"{link['ifname']} {a['local']}" for link in json.loads(out.stdout or "[]")
             for a in link.get("addr_info", []) if (link["ifname"], a["local"]) != ("lo", "::1")]
    snmp = nx.run_in(ns, ["cat", "/proc/net/snmp6"], timeout=10).stdout.split("\n")
    sent = {k: int(v) for k, v in (line.split() for line in snmp if line.strip())
            if k in ("Ip6OutRequests", "Icmp6OutMsgs")}
    return addrs, sent


@pytest.mark.parametrize("source, kinds", [
    ("hub_spoke", {"vm", "host", "fab"}),
    ("site-to-site-vpn.yaml", {"vm", "app", "onprem", "site", "gw"}),
    ("private-endpoint.yaml", {"vm", "app", "pe"}),
])
def test_no_link_of_the_lab_has_an_ipv6_address_and_nothing_sends_ipv6(lab, source, kinds):
    """The lab is IPv4, as the engine: every namespace (hosts with IPv6 off per link, the lab's own
    forwarding namespaces and a forwarding NVA with it off namespace-wide) has no IPv6 address but
    lo's ::1, and sent no IPv6 packet (no link-local address, so no neighbour or router
    solicitation, no MLD report)."""
    topo = Topology.model_validate(hub_spoke()) if source == "hub_spoke" else load(ROOT / "examples" / source)
    lab.up(topo, "netns")
    prefix = f"vl{lab_id_for(lab.home)}-"
    names = [n for n in kernel.netns_list() if n.startswith(prefix)]
    assert kinds <= {n[len(prefix):].split("-")[0] for n in names}, names
    for ns in names:
        assert _ipv6_seen(ns) == ([], {"Ip6OutRequests": 0, "Icmp6OutMsgs": 0}), ns


def test_nsg_source_ports_are_matched_as_written(lab):
    """A rule's source ports are matched on each packet by the kernel; the engine's verdict for a
    probe (an ephemeral source port) is the same."""
    lab.up(Topology.model_validate(scenario()), "netns")
    vm3 = vm_ip(lab, "vm3")
    wait_listening(nb.namespace_of(lab, "vm3"), 80)

    def deny_from(ports):
        def fn(t):
            t.find("network_security_groups", "nsg-other").security_rules = [SecurityRule(
                name="deny-sport", priority=100, direction="Inbound", access="Deny", protocol="Tcp",
                source_address_prefix="*", source_port_range=ports, destination_address_prefix="*",
                destination_port_range="80")]
        return fn
    _set(lab, deny_from("1024-65535"))
    assert real(lab, "vm1", vm3, 80, "Tcp") == ("TimedOut", "TimedOut")
    _set(lab, deny_from("1-1023"))
    assert real(lab, "vm1", vm3, 80, "Tcp") == ("Connected", "Connected")


# -- the matrix, probed ----------------------------------------------------------------------------
def _note_with_deny() -> dict:
    """The note's lab, integrated, a second VM beside the first, and an NSG on the VM subnet that
    denies inbound 22 (the VMs listen on 80 only: 22 would be refused without it)."""
    import yaml
    doc = yaml.safe_load(NOTE.read_text())
    default, integration = doc["virtual_networks"][0]["subnets"]
    default["network_security_group"] = "nsg-vms"
    integration["delegations"] = ["Microsoft.Web/serverFarms"]
    doc["network_security_groups"] = [{"name": "nsg-vms", "security_rules": [{
        "name": "deny-22", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
        "source_address_prefix": "*", "destination_address_prefix": "*", "destination_port_range": "22"}]}]
    doc["virtual_machines"].append({**doc["virtual_machines"][0], "name": "rg1vm2"})
    doc["web_apps"][0]["vnet_integration"] = "vnet1/integration"
    return doc


def _matrix(lab, *args):
    import json
    from conftest import cli
    res = cli(lab.home, "matrix", "--ports", "80,22", "--backend", "netns", *args)
    return res, (json.loads(res.output) if "json" in args else None)


def test_matrix_probed_on_the_kernel_equals_the_engine(lab):
    lab.up(Topology.model_validate(_note_with_deny()), "netns")
    for vm in ("rg1vm1", "rg1vm2"):
        wait_listening(nb.namespace_of(lab, vm), 80)
    res, result = _matrix(lab, "-o", "json")
    assert res.exit_code == 0, res.output
    from vnetlab.engine.matrix import matrix as engine_matrix
    engine = engine_matrix(lab.network(), ["80", "22"])
    assert result["classes"] == engine["classes"] and result["agree"] is True
    classes = len(engine["classes"])
    expected = {(i, j) for i in range(classes) for j in range(classes)
                if i != j or len(engine["classes"][i]["members"]) > 1}
    assert {(c["source"], c["destination"]) for c in result["cells"]} == expected  # every class pair, probed
    listed = {(c["source"], c["destination"]): c["verdicts"] for c in engine["cells"]}
    for cell in result["cells"]:
        assert cell["verdicts"] == listed.get((cell["source"], cell["destination"]), engine["default"])
        assert cell["observed"] == cell["verdicts"], cell
    seen = {v for c in result["cells"] for v in c["observed"].values()}
    assert {"TimedOut", "Connected"} <= seen, seen

    # the kernel stops agreeing: rg1vm1's service dies, its port 80 now refuses
    vm_ns = nb.namespace_of(lab, "rg1vm1")
    pid = next(d["pid"] for _, n, d in lab.store.records(K_PROC) if n.startswith(vm_ns))
    import os
    import signal
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    res, result = _matrix(lab, "-o", "json")
    assert res.exit_code == 1 and result["agree"] is False
    wrong = [c for c in result["cells"] if not c["agree"]]
    assert wrong and all(c["probed"][1] == "rg1vm1" and c["observed"]["80"] == "Refused" for c in wrong)
    table = _matrix(lab)[0]
    assert table.exit_code == 1 and "ok != ref" in table.output and "DISAGREE" in table.output


def test_matrix_backend_netns_is_refused_on_a_lab_not_emulated(lab):
    from conftest import cli
    lab.up(load(NOTE))
    res = cli(lab.home, "matrix", "--ports", "80", "--backend", "netns")
    assert res.exit_code == 2 and "EmulationNotRunning" in res.output, res.output
