"""Kernel layer of the netns backend, on the field note's topology (real packets).

Topology (hand-written DesiredState; the engine will generate these later)::

    vl-t-app (web-app sandbox)           vl-t-wrk (worker)                 vl-t-fab (VNet fabric)        vl-t-vm
    eth0 169.254.129.2/24  ----------  vlse 169.254.129.1/24
    vnet00sfpui6f 169.254.254.2/24 ---  vlsv 169.254.254.1/24 (MTU 1458)
                                        vlint 10.0.0.190/26  ---------- vlnint -[vlb1 10.0.0.129/26]
                                        SNAT -> 10.0.0.190                      [vlb0 10.0.0.1/26]- vlnvm --- eth0 10.0.0.4/26
                                        RST for new TCP to .190                 TTL-preserving routing       responder :80

The worker's forwarding is the only hop that decrements TTL (64 -> 63 as in the note);
the fabric routes between its subnet bridges without decrementing (Azure's SDN does not
either): ``ttl_preserve_body`` adds 1 in prerouting, the forward path subtracts it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from vnetlab.backends.netns import (Address, Bridge, DesiredState, Namespace, Neighbour,
                                    NftTable, Process, Route, VethPair, apply,
                                    clean, mac_for, process_pid, teardown, ttl_preserve_body)
from vnetlab.backends.netns import exec as nx
from vnetlab.backends.netns import kernel
from vnetlab.backends.netns.apply import pid_alive
from vnetlab.store import Store
from netns_support import NETNS_MARKS, wait_listening  # noqa: E402

pytestmark = NETNS_MARKS

# one set of names per test process: several runs of this file may share the machine
T = f"vl-t{os.getpid():x}"
APP, WRK, FAB, VM = f"{T}-app", f"{T}-wrk", f"{T}-fab", f"{T}-vm"
ALL = (APP, WRK, FAB, VM)
M = {k: mac_for("vl-t/" + k) for k in
     ("app-eth0", "app-vnet", "wrk-se", "wrk-sv", "wrk-int", "fab-int", "fab-vm", "vm-eth0", "b0", "b1")}

NOTE_ROUTE_N = """\
Kernel IP routing table
Destination     Gateway         Genmask         Flags Metric Ref    Use Iface
0.0.0.0         169.254.129.1   0.0.0.0         UG    0      0        0 eth0
10.0.0.0        169.254.254.1   255.255.255.0   UG    0      0        0 vnet00sfpui6f
10.0.0.0        169.254.254.1   255.0.0.0       UG    0      0        0 vnet00sfpui6f
169.254.129.0   0.0.0.0         255.255.255.0   U     0      0        0 eth0
169.254.254.0   0.0.0.0         255.255.255.0   U     0      0        0 vnet00sfpui6f
172.16.0.0      169.254.254.1   255.240.0.0     UG    0      0        0 vnet00sfpui6f
192.168.0.0     169.254.254.1   255.255.0.0     UG    0      0        0 vnet00sfpui6f
"""

WRK_NFT = """
  chain postnat {
    type nat hook postrouting priority srcnat; policy accept;
    iifname "vlsv" oifname "vlint" snat to 10.0.0.190
  }
  chain inbound {
    type filter hook input priority filter; policy accept;
    ip daddr 10.0.0.190 meta l4proto tcp reject with tcp reset
  }
"""


def responder(*args: str) -> list[str]:
    return [sys.executable, "-m", "vnetlab.backends.netns.responder", *args]


def note_state(*, drop_192: bool = False, wrk_extra: str = "", backend: str = "10.0.0.4:80",
               ) -> DesiredState:
    app_routes = [Route(ns=APP, dest="default", via="169.254.129.1", dev="eth0")]
    for p in ("10.0.0.0/24", "10.0.0.0/8", "172.16.0.0/12") + (() if drop_192 else ("192.168.0.0/16",)):
        app_routes.append(Route(ns=APP, dest=p, via="169.254.254.1", dev="vnet00sfpui6f"))
    return DesiredState(
        namespaces=[Namespace(name=APP), Namespace(name=VM),
                    Namespace(name=WRK, sysctls={"net.ipv4.ip_forward": "1"}),
                    Namespace(name=FAB, sysctls={"net.ipv4.ip_forward": "1"})],
        bridges=[Bridge(ns=FAB, name="vlb0", addresses=["10.0.0.1/26"], mac=M["b0"], alias="subnet default"),
                 Bridge(ns=FAB, name="vlb1", addresses=["10.0.0.129/26"], mac=M["b1"], alias="subnet integration")],
        veths=[
            VethPair(ns_a=APP, name_a="eth0", ns_b=WRK, name_b="vlse", mac_a=M["app-eth0"], mac_b=M["wrk-se"]),
            VethPair(ns_a=APP, name_a="vnet00sfpui6f", ns_b=WRK, name_b="vlsv", mtu=1458,
                     mac_a=M["app-vnet"], mac_b=M["wrk-sv"]),
            VethPair(ns_a=WRK, name_a="vlint", ns_b=FAB, name_b="vlnint", master_b="vlb1",
                     mac_a=M["wrk-int"], mac_b=M["fab-int"]),
            VethPair(ns_a=VM, name_a="eth0", ns_b=FAB, name_b="vlnvm", master_b="vlb0",
                     mac_a=M["vm-eth0"], mac_b=M["fab-vm"], alias="/subscriptions/x/nic/rg1vm1-nic"),
        ],
        addresses=[
            Address(ns=APP, dev="eth0", cidr="169.254.129.2/24"),
            Address(ns=APP, dev="vnet00sfpui6f", cidr="169.254.254.2/24"),
            Address(ns=WRK, dev="vlse", cidr="169.254.129.1/24"),
            Address(ns=WRK, dev="vlsv", cidr="169.254.254.1/24"),
            Address(ns=WRK, dev="vlint", cidr="10.0.0.190/26"),
            Address(ns=VM, dev="eth0", cidr="10.0.0.4/26"),
        ],
        routes=app_routes + [
            Route(ns=WRK, dest="10.0.0.0/24", via="10.0.0.129", dev="vlint"),
            Route(ns=VM, dest="default", via="10.0.0.1", dev="eth0"),
        ],
        neighbours=[
            Neighbour(ns=APP, dev="eth0", ip="169.254.129.1", mac=M["wrk-se"]),
            Neighbour(ns=APP, dev="vnet00sfpui6f", ip="169.254.254.1", mac=M["wrk-sv"]),
            Neighbour(ns=WRK, dev="vlse", ip="169.254.129.2", mac=M["app-eth0"]),
            Neighbour(ns=WRK, dev="vlsv", ip="169.254.254.2", mac=M["app-vnet"]),
            Neighbour(ns=WRK, dev="vlint", ip="10.0.0.129", mac=M["b1"]),
            Neighbour(ns=FAB, dev="vlb1", ip="10.0.0.190", mac=M["wrk-int"]),
            Neighbour(ns=FAB, dev="vlb0", ip="10.0.0.4", mac=M["vm-eth0"]),
            Neighbour(ns=VM, dev="eth0", ip="10.0.0.1", mac=M["b0"]),
        ],
        nft_tables=[
            NftTable(ns=WRK, family="ip", name="vlwrk", text=WRK_NFT + wrk_extra),
            NftTable(ns=FAB, family="ip", name="vlfab",
                     text=ttl_preserve_body(["vlb0", "vlb1"], ["10.0.0.0/24"])),
        ],
        processes=[
            Process(ns=VM, name="responder", argv=responder("--name", "rg1vm1", "--tcp", "80", "--udp", "53")),
            Process(ns=APP, name="webapp", argv=responder("--webapp", "contoso", "--port", "80",
                                                          "--backend", backend)),
        ],
    )


def _preclean() -> None:
    """Leftovers of an interrupted earlier run of *this* test (exact names only)."""
    for ns in ALL:
        if kernel.netns_exists(ns):
            kernel.netns_del(ns)
        kernel.remove_etc_netns(ns)


@pytest.fixture
def store(tmp_path):
    _preclean()
    st = Store.open(tmp_path / "home")
    yield st
    clean(st)
    assert not (set(ALL) & kernel.netns_list())




def netns_inode(ns: str) -> str:
    return nx.run_in(ns, ["readlink", "/proc/self/ns/net"]).stdout.strip()


def assert_gone(store: Store, pids: list[int]) -> None:
    assert not (set(ALL) & kernel.netns_list()), kernel.netns_list()
    assert not any(Path("/etc/netns", ns).exists() for ns in ALL)
    for pid in pids:
        assert not pid_alive(pid), pid
    assert store.records() == []


def test_note_topology_build_change_teardown(store, capsys):
    t0 = time.perf_counter()
    rep = apply(note_state(), store)
    build = time.perf_counter() - t0
    assert sorted(rep.created_namespaces) == sorted(ALL)
    wait_listening(VM, 80)
    wait_listening(APP, 80)
    ready = time.perf_counter() - t0

    # route -n in the sandbox is the note's table
    out = nx.run_in(APP, ["route", "-n"]).stdout
    assert out == NOTE_ROUTE_N, out
    # per-namespace resolv.conf is what processes see
    assert "127.0.0.1" in nx.run_in(VM, ["cat", "/etc/resolv.conf"]).stdout

    # ping: ttl=63 (VM 64, the worker is the one decrementing hop); VM sees 10.0.0.190
    cap = nx.capture(VM, "icmp", 2, iface="eth0")
    ping = nx.run_in(APP, ["ping", "-c", "1", "-W", "2", "10.0.0.4"], timeout=10).stdout
    assert "ttl=63" in ping, ping
    lines = cap.lines(timeout=5)
    assert any("IP 10.0.0.190 > 10.0.0.4: ICMP echo request" in l for l in lines), lines
    assert any("IP 10.0.0.4 > 10.0.0.190: ICMP echo reply" in l for l in lines), lines

    # the web app's /check (index.php): SYN from 10.0.0.190 with mss 1418 reaches the VM
    cap = nx.capture(VM, "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0", 1, iface="eth0")
    body = nx.run_in(APP, ["curl", "-sS", "-m", "5", "http://127.0.0.1/check"], timeout=10).stdout
    assert body == "Connection OK"
    syn = cap.lines(timeout=5)
    assert len(syn) == 1 and re.search(r"IP 10\.0\.0\.190\.\d+ > 10\.0\.0\.4\.80: Flags \[S\]", syn[0]), syn
    assert "mss 1418" in syn[0], syn
    nok = nx.run_in(APP, ["curl", "-sS", "-m", "5", "http://127.0.0.1/check?host=10.0.0.4&port=81"],
                    timeout=10).stdout
    assert nok == "Connection NOK"
    assert "hello from rg1vm1" in nx.run_in(APP, ["curl", "-sS", "-m", "5", "http://10.0.0.4/"]).stdout
    assert "web app contoso" in nx.run_in(APP, ["curl", "-sS", "-m", "5", "http://127.0.0.1/"]).stdout

    # the opposite direction is refused (RST), not timed out
    # (curl 7.88 words ECONNREFUSED "Couldn't connect to server" after 0 ms; bash says it plainly)
    for port, url in ((80, "http://10.0.0.190:80/"), (443, "https://10.0.0.190/")):
        p = nx.run_in(VM, ["curl", "-sS", "-k", "-m", "5", url], timeout=10)
        took = re.search(rf"Failed to connect to 10\.0\.0\.190 port {port} after (\d+) ms", p.stderr)
        assert p.returncode == 7 and took and int(took[1]) < 1000, p.stderr  # at once, not a timeout
        p = nx.run_in(VM, ["bash", "-c", f"exec 3<>/dev/tcp/10.0.0.190/{port}"], timeout=10)
        assert p.returncode != 0 and "Connection refused" in p.stderr, p.stderr

    # probes
    flows = [("tcp", "10.0.0.4", 80), ("tcp", "10.0.0.4", 81), ("udp", "10.0.0.4", 53),
             ("udp", "10.0.0.4", 54), ("icmp", "10.0.0.4", None), ("tcp", "192.168.1.1", 80),
             ("tcp", "10.0.0.5", 80)]
    assert nx.probe_many(APP, flows, timeout=1.0) == [
        "Connected", "Refused", "Connected", "Refused", "Connected", "Unreachable", "TimedOut"]
    assert nx.probe_tcp(VM, "10.0.0.190", 80) == "Refused"
    assert nx.probe_tcp(VM, "10.0.0.190", 443) == "Refused"
    assert nx.probe_icmp(APP, "10.0.0.4") == "Connected"
    assert nx.probe_udp(APP, "10.0.0.4", 53) == "Connected"
    assert nx.probe_icmp(VM, "10.0.0.190") == "Connected"
    assert nx.probe_icmp(FAB, "203.0.113.9") == "Unreachable"  # no route out
    t1 = time.perf_counter()
    many = nx.probe_many(APP, [("tcp", "10.0.0.4", 80 if i % 2 == 0 else 81) for i in range(200)], 1.0)
    t_many = time.perf_counter() - t1
    assert many == ["Connected" if i % 2 == 0 else "Refused" for i in range(200)]

    # -- in-place change: a route removed, an nft table changed, the web app's spec changed
    vm_pid, app_pid = process_pid(store, VM, "responder"), process_pid(store, APP, "webapp")
    inodes = {ns: netns_inode(ns) for ns in ALL}
    extra = """
  chain filt {
    type filter hook forward priority filter; policy accept;
    ip daddr 10.0.0.4 udp dport 53 drop
  }
"""
    t2 = time.perf_counter()
    rep2 = apply(note_state(drop_192=True, wrk_extra=extra, backend="10.0.0.4:81"), store)
    change = time.perf_counter() - t2
    assert rep2.created_namespaces == [] and rep2.deleted_namespaces == []
    assert rep2.nft_loaded == [f"{WRK}:ip vlwrk"]
    assert rep2.started == [f"{APP}/webapp"]
    assert process_pid(store, VM, "responder") == vm_pid and pid_alive(vm_pid)
    assert process_pid(store, APP, "webapp") != app_pid and not pid_alive(app_pid)
    assert {ns: netns_inode(ns) for ns in ALL} == inodes
    out = nx.run_in(APP, ["route", "-n"]).stdout
    assert "192.168.0.0" not in out and "172.16.0.0" in out
    wait_listening(APP, 80)
    assert nx.probe_many(APP, [("udp", "10.0.0.4", 53), ("tcp", "10.0.0.4", 80),
                               ("tcp", "192.168.1.1", 80)]) == ["TimedOut", "Connected", "Unreachable"]
    assert nx.run_in(APP, ["curl", "-sS", "-m", "5", "http://127.0.0.1/check"]).stdout == "Connection NOK"
    # same state again: nothing touched
    rep3 = apply(note_state(drop_192=True, wrk_extra=extra, backend="10.0.0.4:81"), store)
    assert rep3.started == [] and rep3.stopped == [] and rep3.nft_loaded == []

    pids = [d["pid"] for _, _, d in store.records("process")]
    t3 = time.perf_counter()
    teardown(store)
    down = time.perf_counter() - t3
    assert_gone(store, pids + [app_pid])
    with capsys.disabled():
        print(f"\n[netns] build {build*1000:.0f} ms (ready incl. services {ready*1000:.0f} ms; "
              f"stages {({k: round(v*1000) for k, v in rep.timings.items()})}), "
              f"change {change*1000:.0f} ms, no-op {rep3.seconds*1000:.0f} ms, "
              f"teardown {down*1000:.0f} ms, 200 probes {t_many*1000:.0f} ms")


@pytest.mark.parametrize("stage", ["links", "config", "processes"])
def test_crash_mid_apply_teardown_leaves_nothing(store, stage):
    def boom(s: str) -> None:
        if s == stage:
            raise KeyboardInterrupt(f"simulated kill at {s}")

    with pytest.raises(KeyboardInterrupt):
        apply(note_state(), store, hook=boom)
    assert set(ALL) <= kernel.netns_list()  # partly built
    pids = [d["pid"] for _, _, d in store.records("process") if d.get("pid")]
    if stage == "processes":
        assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    # a later apply notices the unfinished one and rebuilds from scratch
    rep = apply(note_state(), store)
    assert rep.rebuilt
    assert all(not pid_alive(p) for p in pids)
    wait_listening(VM, 80)
    assert nx.probe_tcp(APP, "10.0.0.4", 80) == "Connected"
    pids = [d["pid"] for _, _, d in store.records("process")]
    # crash again, then teardown alone must leave nothing
    with pytest.raises(KeyboardInterrupt):
        apply(note_state(drop_192=True), store, hook=boom)
    pids += [d["pid"] for _, _, d in store.records("process") if d.get("pid")]
    teardown(store)
    assert_gone(store, pids)


def test_state_validation():
    with pytest.raises(ValueError):
        Namespace(name="host")
    with pytest.raises(ValueError):
        Bridge(ns="vl-x", name="averyverylongname0")
    with pytest.raises(ValueError):  # refers to an undeclared namespace
        DesiredState(namespaces=[Namespace(name="vl-a")], addresses=[Address(ns="vl-b", dev="x", cidr="10.0.0.1/24")])
    with pytest.raises(ValueError):
        kernel.ip_host_batch(["link add foo type dummy"])
    ds = note_state()
    assert DesiredState.model_validate_json(ds.model_dump_json()) == ds
    assert mac_for("x") == mac_for("x") and mac_for("x").startswith("02:")


def test_foreign_namespace_is_never_adopted(store):
    kernel.netns_add([VM])  # exists, but not created through this store
    try:
        from vnetlab.backends.netns import NamespaceConflict
        with pytest.raises(NamespaceConflict):
            apply(note_state(), store)
        assert kernel.netns_exists(VM) and store.records() == []
        assert not (set(ALL) - {VM}) & kernel.netns_list()
    finally:
        kernel.netns_del(VM)


def _kernel_dump(namespaces: list[str]) -> dict:
    """Links (name, MAC, MTU, master, alias, state flags, IPv6 address generation), addresses, every
    route of every table, rules and neighbours of each namespace, without kernel-chosen numbers
    (ifindex)."""
    import json as _json
    import subprocess as _sp
    out = {}
    for ns in namespaces:
        def j(*args, ns=ns):
            return _json.loads(_sp.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True).stdout or "[]")
        links = sorted((l["ifname"], l.get("address"), l.get("mtu"), l.get("master"), l.get("ifalias"),
                        "UP" in l.get("flags", []), l.get("inet6_addr_gen_mode")) for l in j("-d", "link"))
        addrs = sorted((a["ifname"], i["family"], i["local"], i["prefixlen"], i.get("scope"),
                        bool(i.get("noprefixroute"))) for a in j("addr") for i in a.get("addr_info", []))
        routes = sorted(_json.dumps({k: v for k, v in r.items() if k not in ("flags",)}, sort_keys=True)
                        for r in j("-4", "route", "show", "table", "all"))
        rules = sorted(_json.dumps(r, sort_keys=True) for r in j("-4", "rule"))
        neigh = sorted((n["dev"], n["dst"], n.get("lladdr"), tuple(n.get("state", []))) for n in j("-4", "neigh"))
        out[ns] = {"links": links, "addrs": addrs, "routes": routes, "rules": rules, "neigh": neigh}
    return out


def test_netlink_equals_ip_batch(tmp_path, monkeypatch):
    """The in-process netlink configuration (default) makes exactly the kernel state that the
    same requests sent with ``ip -n NS -batch`` make, on a planned hub-and-spoke lab (NVA in a
    peered VNet, appliance links, fwmark rules, tables > 255, blackholes, onlink routes,
    noprefixroute addresses, permanent neighbours, aliases)."""
    from test_netns_backend import hub_spoke
    from vnetlab.backends.netns.plan import plan
    from vnetlab.lab import allocate_dynamic_addresses
    from vnetlab.model import Topology
    topo = Topology.model_validate(hub_spoke())
    allocate_dynamic_addresses(topo, None)
    ds = DesiredState.model_validate_json(plan(topo, "tnl0").model_dump_json())
    ds = ds.model_copy(update={"processes": []})
    names = [n.name for n in ds.namespaces]
    dumps = []
    for mode in ("netlink", "ip"):
        if mode == "ip":
            monkeypatch.setenv("VNETLAB_NETNS_IP_BATCH", "1")
        st = Store.open(tmp_path / mode)
        try:
            apply(ds, st)
            dumps.append(_kernel_dump(names))
        finally:
            teardown(st)
    assert dumps[0] == dumps[1]
    assert sum(len(v["routes"]) for v in dumps[0].values()) > 50
    assert not (set(names) & kernel.netns_list())


def test_launched_responder_opens_its_log_at_its_first_connection_or_error(store):
    """A built-in responder creates its log file when it first has something to say: at its first
    connection (1,000 idle VMs create no files), or at once when it cannot start (its port is
    taken), which the launcher then reports as failed."""
    from vnetlab.backends.netns.processes import log_path, responder_argv
    procs = [Process(ns=VM, name=n, argv=responder_argv("--name", n, "--tcp", "80"), kind="responder", tcp=[80])
             for n in ("first", "second")]
    rep = apply(DesiredState(namespaces=[Namespace(name=VM)], processes=procs), store)
    assert len(rep.listening) == 1 and len(rep.failed) == 1, (rep.listening, rep.failed)
    serving, refused = rep.listening[0].split("/")[1], rep.failed[0].split("/")[1]
    assert "Address already in use" in log_path(store, VM, refused).read_text()
    log = log_path(store, VM, serving)
    assert not log.exists()
    assert nx.probe_tcp(VM, "127.0.0.1", 80) == "Connected"
    deadline = time.monotonic() + 5
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.read_text().startswith(f"responder {serving}: tcp [80]")


def test_new_namespaces_are_distinct_and_get_every_sysctl_whatever_their_starting_values():
    """netns_add_many makes the files of /run/netns hard links of one file and creates the
    namespaces in two threads, writing only the sysctls that differ from the values new namespaces
    start with and that no earlier write set: every name must hold a namespace of its own, and
    every namespace must end with every value asked, those equal to the start (or to what an
    earlier write set) included."""
    probe, names = f"{T}-probe", [f"{T}-s{i}" for i in range(70)]   # 64 or more: two threads
    keys = ("net.ipv4.ip_forward", "net.ipv4.conf.all.send_redirects", "net.ipv6.conf.all.disable_ipv6",
            "net.ipv6.conf.default.disable_ipv6")   # writing the ``all`` one sets the ``default`` one too
    try:
        kernel.netns_add([probe])
        start: dict[str, str] = {}
        kernel.in_namespaces([probe], lambda ns: start.update(kernel.read_sysctls(keys)))
        flipped = {k: "0" if start[k] == "1" else "1" for k in keys}
        variants = (flipped, dict(start), {**flipped, keys[0]: start[keys[0]]}, {**flipped, keys[3]: start[keys[3]]})
        asked = {ns: variants[i % 4] for i, ns in enumerate(names)}   # the first learns what a write implies
        kernel.netns_add_many(names, asked)
        seen: dict[str, dict[str, str]] = {}
        kernel.in_namespaces(names, lambda ns: seen.update({ns: kernel.read_sysctls(keys)}))
        assert seen == asked
        inodes = {os.stat(kernel.RUN_NETNS / ns).st_ino for ns in [probe, *names]}
        assert len(inodes) == len(names) + 1 and os.stat("/proc/self/ns/net").st_ino not in inodes
        assert len({netns_inode(ns) for ns in names[:3] + names[-3:]}) == 6
    finally:
        kernel.netns_del_many([probe, *names])
    assert not ({probe, *names} & kernel.netns_list())


def test_etc_netns_entries_lead_to_each_namespace_own_resolv_conf(store):
    """Each namespace's /etc/netns entry is a link to a directory holding its resolv.conf, shared
    by the namespaces whose text is the same; a change relinks one namespace only, a directory no
    namespace leads to any more goes, and teardown leaves none."""
    a, b, c = "nameserver 10.9.0.1\n", "nameserver 10.9.0.2\n", "nameserver 10.9.0.3\n"

    def state(texts: dict[str, str]) -> DesiredState:
        return DesiredState(namespaces=[Namespace(name=ns, resolv_conf=t) for ns, t in texts.items()])

    def seen() -> dict[str, str]:
        return {ns: (kernel.ETC_NETNS / ns / "resolv.conf").read_text() for ns in ALL
                if (kernel.ETC_NETNS / ns).exists()}

    def ours() -> set[str]:
        return {p.name for p in kernel.ETC_NETNS.glob("vl-etc-*")} & {d for _, d, _ in store.records("netns-etc")}

    apply(state({APP: a, WRK: a, FAB: b}), store)
    assert seen() == {APP: a, WRK: a, FAB: b}
    assert all((kernel.ETC_NETNS / ns).is_symlink() for ns in (APP, WRK, FAB))
    assert os.path.realpath(kernel.ETC_NETNS / APP) == os.path.realpath(kernel.ETC_NETNS / WRK)
    assert os.path.realpath(kernel.ETC_NETNS / APP) != os.path.realpath(kernel.ETC_NETNS / FAB)
    assert os.listdir(kernel.ETC_NETNS / APP) == ["resolv.conf"]  # ip netns exec binds every file
    assert nx.run_in(WRK, ["cat", "/etc/resolv.conf"]).stdout == a
    assert len(ours()) == 2
    apply(state({APP: a, WRK: c, FAB: b, VM: c}), store)
    assert seen() == {APP: a, WRK: c, FAB: b, VM: c}
    assert nx.run_in(WRK, ["cat", "/etc/resolv.conf"]).stdout == c
    assert len(ours()) == 3
    apply(state({APP: a, WRK: c}), store)   # b's only namespace is gone: so is its directory
    assert seen() == {APP: a, WRK: c} and len(ours()) == 2
    dirs = ours()
    teardown(store)
    assert not any((kernel.ETC_NETNS / name).exists() or (kernel.ETC_NETNS / name).is_symlink()
                   for name in [*ALL, *dirs])
    assert store.records() == []
