"""A VM deallocated (or stopped) in the emulation: its services stop, nothing reaches it or leaves
it (the engine's VmNotRunning), its registration record leaves the zone Azure DNS serves; started
again, all of it comes back."""

from __future__ import annotations

import copy

from test_vm_power import LAB

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.backends.netns.apply import K_PROC
from vnetlab.topology import parse
from netns_support import NETNS_MARKS, emulated, probe_against  # noqa: E402

pytestmark = NETNS_MARKS


def vm2_processes(lab) -> list[int]:
    return [d["pid"] for _, n, d in lab.store.records(K_PROC) if d.get("pid") and "vm-vm2" in n]


def dig(lab, who: str, name: str) -> str:
    out = nx.run_in(nb.namespace_of(lab, who), ["dig", "+short", "+tries=1", "+time=3", name], timeout=30).stdout
    return out.strip()


def set_power(lab, vm: str, method: str) -> None:
    lab.change(lambda topo: getattr(topo.find("virtual_machines", vm), method)())


def test_deallocate_stops_the_vm_in_the_kernel_as_the_engine_says(tmp_path):
    with emulated(tmp_path / "home", parse(copy.deepcopy(LAB))) as lab:
        vm2_ip = str(lab.network().endpoint("vm2").ip)
        assert vm2_processes(lab) and nx.probe_tcp(nb.namespace_of(lab, "vm1"), vm2_ip, 80, 2.0) == "Connected"
        assert dig(lab, "vm1", "vm2.corp.internal") == vm2_ip
        set_power(lab, "vm2", "deallocate")
        want = lab.trace("vm1", vm2_ip, 80)
        assert (want.verdict, want.reason) == ("TimedOut", "VmNotRunning")
        assert vm2_processes(lab) == []
        assert nx.probe_tcp(nb.namespace_of(lab, "vm1"), vm2_ip, 80, 2.0) == "TimedOut"
        assert nx.probe_tcp(nb.namespace_of(lab, "vm2"), str(lab.network().endpoint("vm1").ip), 80, 2.0) == "TimedOut"
        assert dig(lab, "vm1", "vm2.corp.internal") == ""   # NXDOMAIN: the record is gone
        set_power(lab, "vm2", "start")
        assert vm2_processes(lab) and lab.trace("vm1", vm2_ip, 80).verdict == "Connected"
        assert nx.probe_tcp(nb.namespace_of(lab, "vm1"), vm2_ip, 80, 2.0) == "Connected"
        assert dig(lab, "vm1", "vm2.corp.internal") == vm2_ip


def test_every_flow_with_vms_that_do_not_run_agrees_with_the_engine(tmp_path):
    """vm2 stopped, the appliance nva1 deallocated, vm4 running: from each running VM to every VM's address, TCP
    80 and 22, UDP 53 and ping, the kernel's verdict is the engine's (through the appliance too)."""
    doc = copy.deepcopy(LAB)
    doc["virtual_machines"].append({"name": "vm4", "subnet": "hub/default", "services": [{"port": 80}]})
    for vm in doc["virtual_machines"]:
        vm["power_state"] = {"vm2": "stopped", "nva1": "deallocated"}.get(vm["name"], "running")
    with emulated(tmp_path / "home", parse(doc)) as lab:
        net = lab.network()
        addresses = [str(net.endpoint(vm["name"]).ip) for vm in doc["virtual_machines"]]
        flows = [("tcp", ip, 80) for ip in addresses] + [("tcp", ip, 22) for ip in addresses] \
            + [("udp", ip, 53) for ip in addresses] + [("icmp", ip, None) for ip in addresses]
        reasons = set()
        for src in ("vm1", "vm3"):
            own = str(net.endpoint(src).ip)
            mine = [f for f in flows if f[1] != own]
            want = [lab.trace(src, ip, port, proto.capitalize()) for proto, ip, port in mine]
            got = probe_against(nb.namespace_of(lab, src), mine, [w.verdict for w in want])
            assert [(f, w.verdict) for f, w in zip(mine, want, strict=True)] == list(zip(mine, got, strict=True))
            reasons |= {w.reason for w in want}
        assert "VmNotRunning" in reasons and "Reachable" in reasons
