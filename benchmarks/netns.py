"""Benchmark of the netns backend (Linux, root).

    .venv/bin/python benchmarks/netns.py [--endpoints 200] [--seconds 3]

1. ``up``/``down`` of the field note's lab (examples/app-service-vnet-integration.yaml);
2. ``up``/``down`` of a generated lab with N endpoints (VMs + web apps, several VNets);
3. iperf3 throughput web app -> VM through worker + fabric with a 1,000-rule NSG on the VM's
   subnet, as a ratio to a bare veth pair between two namespaces measured in the same run.

Goals: note lab up < 1 s, N=200 up < 3 s, down < 2 s, ratio >= 0.8, nothing left behind.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vnetlab.backends import netns_backend as nb  # noqa: E402
from vnetlab.backends.netns import (Address, DesiredState, Namespace, VethPair, apply,  # noqa: E402
                                    check_prerequisites, kernel, teardown)
from vnetlab.backends.netns import exec as nx  # noqa: E402
from vnetlab.backends.netns.plan import lab_id_for  # noqa: E402
from vnetlab.cli.main import integrate  # noqa: E402
from vnetlab.lab import Lab  # noqa: E402
from vnetlab.model import Topology  # noqa: E402
from vnetlab.store import Store  # noqa: E402
from vnetlab.topology import load  # noqa: E402


def generated(n: int) -> dict:
    apps = max(2, n // 10)
    vms = n - apps
    n_vnets = 4
    vnets, vm_list, plans, web = [], [], [], []
    for i in range(n_vnets):
        vnets.append({"name": f"v{i}", "address_space": [f"10.{i}.0.0/16"],
                      "peerings": [{"name": f"p{j}", "remote_virtual_network": f"v{j}"}
                                   for j in range(n_vnets) if abs(i - j) == 1],
                      "subnets": [{"name": "vms", "address_prefix": f"10.{i}.0.0/22", "network_security_group": "nsg"},
                                  {"name": "int", "address_prefix": f"10.{i}.8.0/24",
                                   "delegations": ["Microsoft.Web/serverFarms"]}]})
    for k in range(vms):
        vm_list.append({"name": f"vm{k}", "subnet": f"v{k % n_vnets}/vms", "services": [{"port": 80}]})
    for a in range(apps):
        plans.append({"name": f"plan{a}", "sku": "P1v3"})
        app = {"name": f"app{a}", "plan": f"plan{a}"}
        if a % 2 == 0:
            app["vnet_integration"] = f"v{a % n_vnets}/int"
        web.append(app)
    nsg = {"name": "nsg", "security_rules": [
        {"name": "deny-ssh", "priority": 100, "access": "Deny", "protocol": "Tcp", "source_address_prefix": "*",
         "destination_address_prefix": "*", "destination_port_range": "22"}]}
    return {"name": f"gen{n}", "virtual_networks": vnets, "network_security_groups": [nsg],
            "virtual_machines": vm_list, "app_service_plans": plans, "web_apps": web}


def leftovers(prefix: str) -> list[str]:
    return sorted(n for n in kernel.netns_list() if n.startswith(prefix))


def time_lab(topo: Topology) -> dict:
    with tempfile.TemporaryDirectory(prefix="vnetlab-bench-") as home:
        lab = Lab.open(home)
        prefix = f"vl{lab_id_for(lab.home)}-"
        try:
            t0 = time.perf_counter()
            lab.up(topo, "netns")
            up = time.perf_counter() - t0
            n_ns = len(leftovers(prefix))
            eps = len(lab.network().endpoints())
        finally:
            t1 = time.perf_counter()
            lab.down()
            down = time.perf_counter() - t1
        return {"endpoints": eps, "namespaces": n_ns, "up_s": round(up, 3), "down_s": round(down, 3),
                "left": leftovers(prefix)}


def iperf(client_ns: str, server_ns: str, server_ip: str, seconds: int) -> float:
    srv = subprocess.Popen(kernel.ns_exec_argv(server_ns, ["iperf3", "-s", "-1", "-B", server_ip]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if nx.probe_tcp(client_ns, server_ip, 5201, 0.3) == "Connected":
                break
            time.sleep(0.05)
        # the probe consumed the one-shot server: restart it
        srv.wait(timeout=5)
        srv = subprocess.Popen(kernel.ns_exec_argv(server_ns, ["iperf3", "-s", "-1", "-B", server_ip]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        out = nx.run_in(client_ns, ["iperf3", "-c", server_ip, "-t", str(seconds), "-J"], timeout=seconds + 20)
        data = json.loads(out.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        if srv.poll() is None:
            srv.terminate()
            srv.wait(timeout=5)


def throughput(seconds: int) -> dict:
    # bare veth pair
    with tempfile.TemporaryDirectory(prefix="vnetlab-bench-") as home:
        store = Store.open(home)
        tag = lab_id_for(home)
        a, b = f"vl{tag}-bare-a", f"vl{tag}-bare-b"
        ds = DesiredState(namespaces=[Namespace(name=a), Namespace(name=b)],
                          veths=[VethPair(ns_a=a, name_a="eth0", ns_b=b, name_b="eth0")],
                          addresses=[Address(ns=a, dev="eth0", cidr="10.99.0.1/24"),
                                     Address(ns=b, dev="eth0", cidr="10.99.0.2/24")])
        try:
            apply(ds, store)
            bare = iperf(a, b, "10.99.0.2", seconds)
        finally:
            teardown(store)
    # the note's lab, integrated, with a 1,000-rule NSG on the VM subnet
    topo = load(ROOT / "examples" / "app-service-vnet-integration.yaml")
    rules = [{"name": f"deny-{i}", "priority": 100 + i, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
              "source_address_prefix": f"192.168.{i // 250}.{i % 250 + 1}", "source_port_range": "*",
              "destination_address_prefix": "*", "destination_port_range": str(10000 + i)} for i in range(1000)]
    doc = topo.model_dump(mode="json")
    doc["network_security_groups"] = [{"name": "big", "security_rules": rules}]
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "big"
    with tempfile.TemporaryDirectory(prefix="vnetlab-bench-") as home:
        lab = Lab.open(home)
        try:
            lab.up(Topology.model_validate(doc), "netns")
            t0 = time.perf_counter()
            lab.change(lambda t: integrate(t, "app1", "vnet1", "integration"), create=False)
            change = time.perf_counter() - t0
            vm_ip = str(lab.network().endpoint("rg1vm1").ip)
            lab_bps = iperf(nb.namespace_of(lab, "app1"), nb.namespace_of(lab, "rg1vm1"), vm_ip, seconds)
            t0 = time.perf_counter()
            from vnetlab.model.nsg import SecurityRule
            lab.change(lambda t: t.find("network_security_groups", "big").security_rules.append(SecurityRule(
                name="deny-extra", priority=4000, direction="Inbound", access="Deny", protocol="Udp",
                source_address_prefix="*", destination_address_prefix="*", destination_port_range="9")))
            nsg_reload = time.perf_counter() - t0
        finally:
            lab.down()
    return {"bare_veth_gbps": round(bare, 2), "app_to_vm_gbps": round(lab_bps, 2), "ratio": round(lab_bps / bare, 3),
            "integrate_s": round(change, 3), "nsg_1000_rules_change_s": round(nsg_reload, 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=3)
    a = ap.parse_args()
    problems = check_prerequisites()
    if problems:
        print("netns emulation unavailable: " + "; ".join(problems))
        return 2
    note = time_lab(load(ROOT / "examples" / "app-service-vnet-integration.yaml"))
    print(f"note lab:        up {note['up_s']:.3f} s (goal < 1), down {note['down_s']:.3f} s (goal < 2), "
          f"{note['namespaces']} namespaces, left {note['left']}")
    big = time_lab(Topology.model_validate(generated(a.endpoints)))
    print(f"{big['endpoints']}-endpoint lab: up {big['up_s']:.3f} s (goal < 3), down {big['down_s']:.3f} s "
          f"(goal < 2), {big['namespaces']} namespaces, left {big['left']}")
    tp = throughput(a.seconds)
    print(f"throughput:      bare veth {tp['bare_veth_gbps']} Gbit/s, web app -> VM via worker+fabric "
          f"with a 1,000-rule NSG {tp['app_to_vm_gbps']} Gbit/s, ratio {tp['ratio']} (goal >= 0.8)")
    print(f"changes:         integrate {tp['integrate_s']} s, 1,000-rule NSG edit {tp['nsg_1000_rules_change_s']} s")
    left = [n for n in kernel.netns_list() if n.startswith("vl") and "-bare-" in n] + note["left"] + big["left"]
    print("left behind:     " + (", ".join(left) if left else "nothing"))
    ok = (note["up_s"] < 1 and big["up_s"] < 3 and note["down_s"] < 2 and big["down_s"] < 2
          and tp["ratio"] >= 0.8 and not left)
    print("all goals met" if ok else "some goals missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
