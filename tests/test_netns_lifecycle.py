"""Lifecycle of an emulated lab driven through the real CLI (``python -m vnetlab.cli.main``):
``kill -9`` in the middle of ``up``, then ``up`` again converges and ``down`` leaves nothing;
``clean`` after a crash; ``capture`` never leaves a tcpdump behind.

"Nothing" means: no namespace with the lab's prefix, no ``/etc/netns`` dir of it, no new link
or nft table in the host namespace, no process still running among those the lab recorded
(by PID) or started (by the launcher's exact, per-launch command line). The checks only read;
they never kill anything themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import kernel
from vnetlab.backends.netns.apply import APPLY_META, K_CAPTURE, K_NETNS, K_PROC, pid_alive
from vnetlab.backends.netns.plan import lab_id_for
from vnetlab.lab import Lab
from vnetlab.store import Store
from netns_support import NETNS_MARKS  # noqa: E402

pytestmark = NETNS_MARKS

ROOT = Path(__file__).resolve().parents[1]
NOTE = ROOT / "examples" / "app-service-vnet-integration.yaml"


def cli(*args: str, home: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "vnetlab.cli.main", *args, "--home", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, **kw)


def run_cli(*args: str, home: Path, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    p = cli(*args, home=home, **kw)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def lab_file(tmp_path: Path, vms: int = 90, apps: int = 6) -> Path:
    """~100 endpoints in 3 peered VNets: big enough that ``up`` takes a while to apply."""
    vnets = [{"name": f"v{i}", "address_space": [f"10.{i}.0.0/16"],
              "peerings": [{"name": f"to-v{j}", "remote_virtual_network": f"v{j}"} for j in range(3) if abs(i - j) == 1],
              "subnets": [{"name": "vms", "address_prefix": f"10.{i}.0.0/22"},
                          {"name": "int", "address_prefix": f"10.{i}.8.0/24", "delegations": ["Microsoft.Web/serverFarms"]}]}
             for i in range(3)]
    doc = {"name": "lifecycle", "virtual_networks": vnets,
           "virtual_machines": [{"name": f"vm{k}", "subnet": f"v{k % 3}/vms", "services": [{"port": 80}]}
                                for k in range(vms)],
           "app_service_plans": [{"name": f"plan{a}", "sku": "P1v3"} for a in range(apps)],
           "web_apps": [{"name": f"app{a}", "plan": f"plan{a}", **({"vnet_integration": f"v{a % 3}/int"} if a % 2 else {})}
                        for a in range(apps)]}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    return {l["ifname"] for l in json.loads(out or "[]")}


def host_nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else None


class Witness:
    """What a lab created, noted while it runs, to check afterwards that all of it is gone."""

    def __init__(self, home: Path):
        self.home = home
        self.prefix = f"vl{lab_id_for(home)}-"
        self.pids: set[int] = set()
        self.cmdlines: set[tuple[str, ...]] = set()
        self.links, self.nft = host_links(), host_nft_tables()

    def note(self) -> None:
        for kind in (K_PROC, K_CAPTURE):
            for _, _, d in Store.open(self.home).records(kind):
                if d.get("pid"):
                    self.pids.add(d["pid"])
                if d.get("cmdline"):
                    self.cmdlines.add(tuple(d["cmdline"]))

    def namespaces(self) -> list[str]:
        return sorted(n for n in kernel.netns_list() if n.startswith(self.prefix))

    def running(self) -> list[int]:
        """Recorded PIDs still alive, and any live process with a recorded launcher command line."""
        alive = [p for p in self.pids if pid_alive(p)]
        if self.cmdlines:
            for d in Path("/proc").iterdir():
                if d.name.isdigit() and int(d.name) not in alive:
                    cl = cmdline(int(d.name))
                    if cl and tuple(cl) in self.cmdlines and pid_alive(int(d.name)):
                        alive.append(int(d.name))
        return sorted(alive)

    def assert_nothing_left(self) -> None:
        assert self.namespaces() == []
        etc = Path("/etc/netns")
        assert not (etc.exists() and list(etc.glob(self.prefix + "*")))
        assert host_links() == self.links
        assert host_nft_tables() == self.nft
        deadline = time.monotonic() + 3  # a SIGKILLed launcher's children are reaped by init
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.running() == []
        st = Store.open(self.home)
        assert st.records(K_NETNS) == [] and st.records(K_PROC) == [] and st.records(K_CAPTURE) == []


def down_leaves_nothing(home: Path, w: Witness, **kw) -> None:
    down = run_cli("down", home=home, **kw)
    assert down.returncode == 0, down.stderr
    w.assert_nothing_left()


def kill_mid_up(file: Path, home: Path, w: Witness, at: str) -> None:
    """Start ``vnetlab up FILE --backend netns`` and SIGKILL it once ``at`` is reached: some
    namespaces exist ("namespaces") or services are being started ("processes")."""
    p = cli("up", str(file), "--backend", "netns", home=home)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and p.poll() is None:
            if at == "namespaces" and len(w.namespaces()) >= 3:
                break
            if at == "processes" and (home / "lab.db").exists() and Store.open(home).records(K_PROC):
                break
            time.sleep(0.003)
        assert p.poll() is None, f"up finished before the kill point {at}: {p.communicate()}"
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=10)
        p.stdout.close()
        p.stderr.close()
    assert p.returncode == -signal.SIGKILL
    assert Store.open(home).get_meta(APPLY_META) == "running"  # it really stopped half-way
    assert w.namespaces()
    w.note()


def lab_works(home: Path) -> None:
    lab = Lab.open(home)
    net = lab.network()
    for src, dst in (("vm0", "vm3"), ("vm1", "vm5"), ("app1", "vm4")):  # same VNet, peered, from an app
        tr = lab.trace(src, str(net.endpoint(dst).ip), 80).to_dict()
        assert tr["verdict"] == "Connected"
        assert nb.probe(lab, tr)["verdict"] == "Connected", (src, dst)
    for _, name, d in lab.store.records(K_PROC):
        assert d.get("pid") and pid_alive(d["pid"]), name


@pytest.mark.parametrize("at", ["namespaces", "processes"])
def test_kill9_mid_up_then_up_converges_and_down_leaves_nothing(tmp_path, at):
    home, file = tmp_path / "home", lab_file(tmp_path)
    w = Witness(home)
    try:
        kill_mid_up(file, home, w, at)
        up = run_cli("up", str(file), "--backend", "netns", home=home)
        assert up.returncode == 0, up.stderr
        w.note()
        assert Store.open(home).get_meta(APPLY_META) == "ok"
        lab_works(home)
        down_leaves_nothing(home, w)
    finally:
        if w.namespaces():  # a failed assertion above: still leave nothing behind
            nb.clean(Lab.open(home))


def test_clean_after_kill9(tmp_path):
    home, file = tmp_path / "home", lab_file(tmp_path)
    w = Witness(home)
    try:
        kill_mid_up(file, home, w, "processes")
        clean = run_cli("clean", home=home)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        w.assert_nothing_left()
        down_leaves_nothing(home, w)
    finally:
        if w.namespaces():
            nb.clean(Lab.open(home))


def start_capture(home: Path, w: Witness) -> tuple[subprocess.Popen, int]:
    p = cli("capture", "rg1vm1", "--filter", "icmp", home=home)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        live = [d["pid"] for _, _, d in Store.open(home).records(K_CAPTURE) if pid_alive(d["pid"])]
        if live:
            w.note()
            time.sleep(0.2)  # let tcpdump open its socket
            return p, live[0]
        assert p.poll() is None, p.communicate()
        time.sleep(0.02)
    raise AssertionError("vnetlab capture did not start tcpdump")


def ended(p: subprocess.Popen, tcpdump: int, timeout: float = 5) -> None:
    p.wait(timeout=timeout)
    p.stdout.close()
    p.stderr.close()
    deadline = time.monotonic() + timeout
    while pid_alive(tcpdump) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(tcpdump)


def test_capture_leaves_no_tcpdump(tmp_path):
    home = tmp_path / "home"
    w = Witness(home)
    try:
        up = run_cli("up", str(NOTE), "--backend", "netns", home=home)
        assert up.returncode == 0, up.stderr
        w.note()
        # SIGTERM, SIGHUP (terminal closed), Ctrl-C (SIGINT to the foreground group), SIGKILL
        for how in ("term", "hup", "ctrl-c", "kill"):
            p, tcpdump = start_capture(home, w)
            if how == "ctrl-c":
                os.killpg(p.pid, signal.SIGINT)
            else:
                os.kill(p.pid, {"term": signal.SIGTERM, "hup": signal.SIGHUP, "kill": signal.SIGKILL}[how])
            ended(p, tcpdump)
            if how != "kill":  # a SIGKILLed CLI cannot forget its record; down/clean will
                assert Store.open(home).records(K_CAPTURE) == [], how
        # the lab torn down under a running capture: down stops it by its recorded PID
        p, tcpdump = start_capture(home, w)
        down = run_cli("down", home=home)
        assert down.returncode == 0, down.stderr
        ended(p, tcpdump)
        w.assert_nothing_left()
    finally:
        if w.namespaces():
            nb.clean(Lab.open(home))


# -- services given as a command ---------------------------------------------------------------------
def services_file(tmp_path: Path, *services: dict) -> Path:
    doc = {"name": "svc", "virtual_networks": [{"name": "v", "address_space": ["10.9.0.0/24"],
                                                "subnets": [{"name": "s", "address_prefix": "10.9.0.0/24"}]}],
           "virtual_machines": [{"name": "vm1", "subnet": "v/s", "services": list(services)}]}
    path = tmp_path / "svc.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def in_namespace(ns: str) -> list[int]:
    return [p for p in kernel.netns_pids(ns) if pid_alive(p)]


@pytest.mark.parametrize("verb", ["down", "clean", "change"])
def test_a_command_that_forks_leaves_nothing(tmp_path, verb):
    home = tmp_path / "home"
    forks = {"port": 8080, "command": "sleep 1000 & python3 -m http.server 8080"}
    file = services_file(tmp_path, forks)
    w = Witness(home)
    r = run_cli("up", str(file), "--backend", "netns", home=home)
    assert r.returncode == 0, r.stderr
    ns = nb.namespace_of(Lab.open(home), "vm1")
    started = in_namespace(ns)
    assert len(started) >= 3, started   # sh, sleep, python
    w.note()
    if verb == "change":  # the service's command changes: the old one and all it forked stop
        file = services_file(tmp_path, {**forks, "command": "exec python3 -m http.server 8080"})
        r = run_cli("up", str(file), home=home)
        assert r.returncode == 0, r.stderr
        assert not [p for p in started if pid_alive(p)]
        assert len(in_namespace(ns)) == 1
    r = run_cli(verb if verb != "change" else "down", home=home)
    assert r.returncode == 0, r.stderr
    assert not [p for p in started if pid_alive(p)]
    w.assert_nothing_left()


def test_up_reports_services_that_did_not_start(tmp_path):
    home = tmp_path / "home"
    file = services_file(tmp_path, {"port": 8081, "command": "no-such-program-vnetlab --port 8081"},
                         {"port": 8082, "command": "exec python3 -m http.server 8083"},
                         {"port": 8084, "command": "exec python3 -m http.server 8084"})
    w = Witness(home)
    r = run_cli("up", str(file), "--backend", "netns", home=home)
    w.note()
    err = " ".join(r.stderr.split())
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "ServiceNotStarted" in err and "no-such-program-vnetlab --port 8081" in err, err
    assert "not found" in err and "svc-tcp-8081.log" in err, err
    assert "not listening on tcp/8082 (it listens on tcp/0.0.0.0:8083)" in err, err
    assert "8084" not in err
    # the lab is up all the same, and `up` again reports them again
    r = run_cli("up", str(file), home=home)
    assert r.returncode == 1 and "svc-tcp-8081" in r.stderr
    w.note()
    r = run_cli("down", home=home)
    assert r.returncode == 0, r.stderr
    w.assert_nothing_left()


# -- one lab, one home ----------------------------------------------------------------------------
def test_lab_ids_are_long_and_namespaces_stay_short(tmp_path):
    ids = {lab_id_for(tmp_path / f"h{i}") for i in range(2000)}
    assert len(ids) == 2000 and all(len(i) >= 12 for i in ids)
    file = services_file(tmp_path, {"port": 80})
    lab = Lab.open(tmp_path / ("h" * 200))
    from vnetlab.backends.netns.plan import plan
    from vnetlab.topology import load
    assert all(len(n.name) < 64 for n in plan(load(file), lab_id_for(lab.home)).namespaces)


def test_nothing_runs_in_another_homes_namespaces(tmp_path, monkeypatch):
    """Two homes whose lab ids collide (forced here): the second cannot take or enter the
    first one's namespaces, and says so."""
    from vnetlab.backends.netns.errors import NamespaceConflict
    from vnetlab.topology import load
    file = services_file(tmp_path, {"port": 80})
    first, second = Lab.open(tmp_path / "a"), Lab.open(tmp_path / "b")
    first.up(load(file), "netns")
    try:
        monkeypatch.setattr(nb, "lab_id", lambda lab: lab_id_for(first.home))
        with pytest.raises(NamespaceConflict, match="not created by this lab"):
            second.up(load(file), "netns")
        with pytest.raises(NamespaceConflict, match=f"was not created by the lab in {second.home}"):
            nb.namespace_of(second, "vm1")
        assert nb.namespace_of(first, "vm1")
        second.store.set_meta("backend", "sim")  # nothing of its own to tear down
    finally:
        first.down()
    # and through the CLI: exec where the lab is not up in the kernel is a clear error, exit 2
    r = run_cli("up", str(file), home=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    r = run_cli("exec", "vm1", "--", "true", home=tmp_path / "c")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def test_backend_failure_is_a_clear_error(tmp_path):
    home = tmp_path / "home"
    file = services_file(tmp_path, {"port": 80})
    taken = f"vl{lab_id_for(home)}-internet"   # someone else's namespace, in the lab's way
    kernel.netns_add([taken])
    try:
        r = run_cli("up", str(file), "--backend", "netns", home=home)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "NamespaceConflict" in r.stderr and taken in r.stderr and "Traceback" not in r.stderr, r.stderr
    finally:
        kernel.netns_del(taken)
    run_cli("down", home=home)


def test_down_that_cannot_remove_refuses_and_forgets_nothing(tmp_path, monkeypatch):
    from vnetlab.backends.netns.errors import TeardownError
    from vnetlab.topology import load
    lab = Lab.open(tmp_path / "home")
    lab.up(load(services_file(tmp_path, {"port": 80})), "netns")
    w = Witness(lab.home)
    w.note()
    before = Store.open(lab.home).records()
    monkeypatch.setattr(kernel, "check_prerequisites", lambda: ["needs root (run as root or under sudo)"])
    with pytest.raises(TeardownError, match="cannot be removed here"):
        lab.down()
    assert Store.open(lab.home).records() == before and lab.exists() and lab.backend_name == "netns"
    assert w.namespaces()
    monkeypatch.undo()
    lab.down()
    w.assert_nothing_left()


def test_concurrent_applies_end_with_the_latest_version(tmp_path):
    """A change applied while another process holds the lab's apply lock waits for it, then
    applies whatever the store holds by then (here a newer version than its own)."""
    import fcntl
    from vnetlab.topology import load
    home = tmp_path / "home"
    r = run_cli("up", str(services_file(tmp_path, {"port": 80})), "--backend", "netns", home=home)
    assert r.returncode == 0, r.stderr
    w = Witness(home)
    lock = os.open(home / "netns.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        two = tmp_path / "two.yaml"
        doc = yaml.safe_load(services_file(tmp_path, {"port": 80}).read_text())
        doc["virtual_machines"].append({"name": "vm2", "subnet": "v/s", "services": [{"port": 80}]})
        two.write_text(yaml.safe_dump(doc))
        p = cli("up", str(two), home=home)
        deadline = time.monotonic() + 20
        while Lab.open(home).topology().find("virtual_machines", "vm2") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert p.poll() is None            # waiting for the lock, not applying
        assert not [n for n in w.namespaces() if n.endswith("-vm2")]
        doc["virtual_machines"].append({"name": "vm3", "subnet": "v/s", "services": [{"port": 80}]})
        three = tmp_path / "three.yaml"
        three.write_text(yaml.safe_dump(doc))
        lab = Lab.open(home)
        with lab.store.write() as tx:       # another writer commits meanwhile (its apply comes later)
            tx.save(lab._draft(tx.load(), lambda _t: load(three), True)[1].model_dump(mode="json"))
    finally:
        os.close(lock)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert {n.rsplit("-", 1)[1] for n in w.namespaces() if "-vm-" in n} == {"vm1", "vm2", "vm3"}
    w.note()
    assert run_cli("down", home=home).returncode == 0
    w.assert_nothing_left()


# -- seeing what the emulation does --------------------------------------------------------------
def test_up_says_what_changed_and_ps_and_logs_show_it(tmp_path):
    home = tmp_path / "home"
    svc = {"port": 8080, "command": "echo marker-from-the-service; exec python3 -m http.server 8080"}
    file = services_file(tmp_path, {"port": 80}, svc)
    w = Witness(home)
    r = run_cli("up", str(file), "--backend", "netns", "-o", "json", home=home)
    assert r.returncode == 0, r.stderr
    kernel1 = json.loads(r.stdout)["kernel"]
    assert "vm-vm1" in kernel1["created"] and "fab-v" in kernel1["created"] and not kernel1["removed"]
    r = run_cli("up", str(file), home=home)
    assert r.returncode == 0 and "Kernel: nothing changed." in r.stdout, r.stdout
    # a second VM, and vm1's command changes: created, restarted, changed
    doc = yaml.safe_load(file.read_text())
    doc["virtual_machines"][0]["services"][1]["command"] = "echo marker-2; exec python3 -m http.server 8080"
    doc["virtual_machines"].append({"name": "vm2", "subnet": "v/s", "services": [{"port": 80}]})
    file.write_text(yaml.safe_dump(doc))
    r = run_cli("up", str(file), "-o", "json", home=home)
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)["kernel"]
    assert k["created"] == ["vm-vm2"] and "vm-vm1/svc-tcp-8080" in k["restarted"] and "fab-v" in k["changed"], k
    r = run_cli("up", str(file), home=home)
    assert "Kernel: nothing changed." in r.stdout
    # ps: every namespace with its resource, interfaces and processes
    r = run_cli("ps", "-o", "json", home=home)
    assert r.returncode == 0, r.stderr
    rows = {row["resource"]: row for row in json.loads(r.stdout)}
    vm1 = rows["vm1"]
    assert vm1["kind"] == "vm" and vm1["interfaces"] == ["eth0"] and vm1["exists"]
    procs = {p["name"]: p for p in vm1["processes"]}
    assert procs["responder"]["state"] == "running" and procs["svc-tcp-8080"]["state"] == "running"
    assert rows["v"]["kind"] == "fab" and len(rows["v"]["interfaces"]) >= 4
    # the responder is named after its resource in ps
    comm = Path(f"/proc/{procs['responder']['pid']}/comm").read_text().strip()
    assert comm == "vl:vm1"
    table_out = run_cli("ps", home=home).stdout
    assert "vm1" in table_out and str(procs["responder"]["pid"]) in table_out
    # logs: the service's output
    r = run_cli("logs", "vm1", home=home)
    assert r.returncode == 0 and "marker-2" in r.stdout and "==> svc-tcp-8080" in r.stdout, r.stdout
    w.note()
    assert run_cli("down", home=home).returncode == 0
    w.assert_nothing_left()


def test_check_warns_when_the_last_apply_did_not_finish(tmp_path):
    home = tmp_path / "home"
    file = services_file(tmp_path, {"port": 80})
    assert run_cli("up", str(file), "--backend", "netns", home=home).returncode == 0
    w = Witness(home)
    w.note()
    vm1 = str(Lab.open(home).network().endpoint("vm1").ip)
    r = run_cli("check", "vm1", vm1, "-p", "80", home=home)
    assert "did not finish" not in r.stderr
    Store.open(home).set_meta(APPLY_META, "running")   # as a killed `up` leaves it
    r = run_cli("check", "vm1", vm1, "-p", "80", home=home)
    assert "WARNING" in r.stderr and "did not finish" in r.stderr, r.stderr
    assert run_cli("down", home=home).returncode == 0
    w.assert_nothing_left()


@pytest.mark.parametrize("hard_too", [False, True], ids=["soft-limit-256", "hard-limit-256"])
def test_a_lab_of_more_namespaces_than_the_descriptor_limit_comes_up(tmp_path, hard_too):
    """The common soft limit of descriptors (1,024) is below what a 1,000-VM lab needs: `ip -batch`
    holds each namespace it names, the launcher a pipe from each child until it reports. The backend
    raises the soft limit to the hard one; here the soft limit is lowered to 256 for 300 VMs. With the
    hard limit at 256 too, the links go in several batches and the launcher waits for reports as it
    forks: `up` and `down` still work."""
    import resource
    home, file = tmp_path / "home", lab_file(tmp_path, vms=300, apps=2)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        hard = max(hard, 4096)   # root may raise it
    limits = (256, 256 if hard_too else hard)
    low = {"preexec_fn": lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limits)}
    w = Witness(home)
    try:
        p = cli("up", str(file), "--backend", "netns", home=home, **low)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        w.note()
        assert len(w.namespaces()) == len(Store.open(home).records(K_NETNS)) > 300
        lab_works(home)
        down_leaves_nothing(home, w, **low)
    finally:
        if w.namespaces():
            nb.clean(Lab.open(home))
