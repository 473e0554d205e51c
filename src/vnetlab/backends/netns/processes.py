"""Services in the namespaces: start them, know their state, stop them and everything they forked.

Two kinds of process spec (``state.Process.kind``):

- ``responder``: the built-in stdlib service (``responder.py``), described by its ports. One
  *launcher* (``responder.py --launch TOKEN``) forks one child per service; each child becomes
  a session (and process group) leader, enters its namespace (``setns``) and a private mount
  namespace with ``/etc/netns/NS`` bound over ``/etc`` (as ``ip netns exec`` does), names
  itself after its resource (``/proc/self/comm``: ``ps -e`` shows ``vl:rg1vm1``), binds
  its sockets and only then reports ready. The children keep the launcher's command line,
  unique per launch, which is recorded with each PID. The launcher dies with the applying
  process (``PR_SET_PDEATHSIG``).
- ``command``: a user's ``command:``, run as ``ip netns exec NS /bin/sh -c COMMAND`` in a new
  session: its own process group, whose id (the PID) is recorded. Whatever it forks stays in
  that group (unless it makes a session of its own), so stopping the group stops it all.

Write-ahead: every intent is recorded (one transaction) before anything is started, every
PID right after (one transaction). Processes are stopped by recorded process group only:
SIGTERM to the group of a leader whose ``/proc/PID/cmdline`` still matches its record (PID
reuse), or, when the leader is gone, to a group whose every member is in the recorded
namespace; SIGKILL after a grace period. A record without a PID (crash between intent and
PID) is resolved by its namespace *and* exact command line. Nothing here kills by name or
pattern.

After starting, each service's state is checked (``service_states``): a ``command:`` must be
listening on its port (TCP) or bound to it (UDP), on an address other than loopback, with a
socket of its own process group, within a few seconds; otherwise it is reported with why
(exited, port taken by another process, listening elsewhere) and its log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...store import Store
from . import kernel
from .state import Process

K_PROC = "process"
K_CAPTURE = "capture"   # a foreground tcpdump (``vnetlab capture``) while it runs: ``down`` stops it
RESPONDER = str(Path(__file__).with_name("responder.py"))
RUNNING, FAILED = "running", "failed"


# -- specs ------------------------------------------------------------------------------------
def responder_argv(*args: str) -> list[str]:
    """The stdlib responder run as a plain script in isolated mode (-I -S): no site-packages,
    no package imports, so 200 of them start in a fraction of the time of ``-m vnetlab...``."""
    return [sys.executable, "-I", "-S", RESPONDER, *args]


def responder(ns: str, resource: str, tcp: list[int], udp: list[int] | None = None,
              webapp: bool = False) -> Process:
    """The one definition of a built-in service: its ports make its command line."""
    udp = list(udp or [])
    if webapp:
        args = ["--webapp", resource] + [x for p in tcp for x in ("--port", str(p))]
    else:
        args = ["--name", resource] + [x for p in tcp for x in ("--tcp", str(p))] \
            + [x for p in udp for x in ("--udp", str(p))]
    return Process(ns=ns, name="webapp" if webapp else "responder", argv=responder_argv(*args), kind="responder",
                   tcp=list(tcp), udp=udp, resource=resource)


def command(ns: str, resource: str, protocol: str, port: int, text: str) -> Process:
    """A user's ``command:`` serving ``protocol``/``port``."""
    tcp, udp = ([port], []) if protocol.lower() == "tcp" else ([], [port])
    return Process(ns=ns, name=f"svc-{protocol.lower()}-{port}", argv=["/bin/sh", "-c", text], kind="command",
                   tcp=tcp, udp=udp, resource=resource)


def proc_key(p: Process) -> str:
    return f"{p.ns}/{p.name}"


def log_path(store: Store, ns: str, name: str) -> Path:
    d = store.home / "netns-logs"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{ns}.{name}.log"


def _launched(p: Process) -> bool:
    """Started by the launcher (fork per service after setns) instead of one ``ip netns exec``
    + one interpreter start each: it only needs its namespace to exist, not its links."""
    return p.kind == "responder" and not p.env and p.cwd is None


def _launch_key(p: Process) -> tuple[str, bool]:
    """(interpreter, late): the platform services (DNS, PaaS: ``services.py``) bind the lab's
    addresses and answer by its routes, so they start once the network is configured."""
    return p.argv[0], "--dns" in p.argv or "--paas" in p.argv


# -- /proc --------------------------------------------------------------------------------------
def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else []


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except OSError:
        pass  # not our child


def pid_alive(pid: int) -> bool:
    _reap(pid)
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def pid_matches(pid: int, ns: str, argv: list[str], cmdline: list[str] | None = None) -> bool:
    """The live process PID is still the one we started (guards against PID reuse): its
    command line is the service's (``argv``, or ``ip netns exec NS argv``) or, for services
    forked by the launcher, the launcher's exact command line (unique per launch)."""
    _reap(pid)
    cl = _cmdline(pid)  # a zombie's is empty (its memory is gone): it matches nothing
    if not cl:
        return False
    return cl == list(argv) or cl == kernel.ns_exec_argv(ns, list(argv)) or (bool(cmdline) and cl == list(cmdline))


def rec_matches(data: dict) -> bool:
    pid = data.get("pid")
    return bool(pid) and pid_matches(pid, data.get("ns"), data.get("argv") or [], data.get("cmdline"))


def rec_running(data: dict) -> bool:
    """The recorded service still runs: its leader matches its record, or the leader is gone
    but its process group lives on in the recorded namespace (a command that forked and
    exited, such as ``server &``)."""
    if rec_matches(data):
        return True
    pgid = data.get("pgid")
    if not pgid:
        return False
    want = _ns_inode(data.get("ns", ""))
    members = group_members({pgid})[pgid]
    return bool(members) and want is not None and all(_net_inode(p) == want for p in members)


def group_members(pgids: set[int]) -> dict[int, list[int]]:
    """pgid -> live PIDs in that process group (one pass over /proc)."""
    out: dict[int, list[int]] = {g: [] for g in pgids}
    if not pgids:
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is not None and st[0] not in ("Z", "X") and int(st[2]) in out:
            out[int(st[2])].append(int(entry.name))
    return out


def _net_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _ns_inode(ns: str) -> int | None:
    try:
        return os.stat(kernel.RUN_NETNS / kernel.assert_ns(ns)).st_ino
    except (OSError, ValueError):
        return None


# -- stopping -----------------------------------------------------------------------------------
def _targets(recs: list[tuple[str, dict]]) -> list[tuple[int, dict]]:
    """(process group id, record) for each record whose group is still ours."""
    out: list[tuple[int, dict]] = []
    orphans: list[tuple[int, dict]] = []
    for _name, data in recs:
        ns = data.get("ns")
        if data.get("pid"):
            if rec_matches(data):
                out.append((data.get("pgid") or data["pid"], data))
            elif data.get("pgid"):
                orphans.append((data["pgid"], data))   # the leader is gone: maybe not its children
        elif ns:
            for p in kernel.netns_pids(ns):
                if pid_matches(p, ns, data.get("argv") or [], data.get("cmdline")):
                    out.append((p, {**data, "pid": p, "pgid": p}))
    if orphans:
        members = group_members({g for g, _ in orphans})
        for pgid, data in orphans:
            want = _ns_inode(data.get("ns", ""))
            pids = members[pgid]
            # a group id is not reused while the group has members; they must all be in the
            # recorded namespace (the group of a reused PID would not be)
            if pids and want is not None and all(_net_inode(p) == want for p in pids):
                out.append((pgid, data))
    return out


def _signal_group(pgid: int, data: dict, sig: int) -> None:
    try:
        if data.get("pgid"):
            os.killpg(pgid, sig)
        else:  # recorded before process groups were: the leader only
            os.kill(pgid, sig)
    except ProcessLookupError:
        pass


def _remaining(targets: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """The targets whose process group (or, for old records, leader) still has a live member."""
    present, leaderless = [], []
    for pgid, data in targets:
        _reap(pgid)  # our own child (a ``command:`` started by this process) is a zombie until reaped
        if not data.get("pgid"):
            if pid_alive(pgid):
                present.append((pgid, data))
            continue
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            continue
        # a live leader is a live member; a built-in responder never forks, so its group ends
        # with it; another group whose leader is gone (or a zombie) may still have members: those
        # groups only are looked for in /proc (one pass for all of them)
        if pid_alive(pgid):
            present.append((pgid, data))
        elif data.get("kind") != "responder":
            leaderless.append((pgid, data))
    if leaderless:
        members = group_members({g for g, _ in leaderless})  # zombies are not members
        present += [(g, d) for g, d in leaderless if members[g]]
    return present


def stop_records(store: Store, recs: list[tuple[str, dict]], grace: float = 2.0, kind: str = K_PROC) -> list[str]:
    """Stop recorded processes and their process groups, all together: SIGTERM each group still
    ours, wait (one grace period for all), SIGKILL what is left, then forget the records in one
    transaction. Returns problems (groups that would not die)."""
    return finish_stop(store, terminate(recs), recs, grace, kind)


def terminate(recs: list[tuple[str, dict]]) -> list[tuple[int, dict]]:
    """SIGTERM the process group of each record still ours; returns them (for ``finish_stop``)."""
    targets = _targets(recs)
    for pgid, data in targets:
        _signal_group(pgid, data, signal.SIGTERM)
    return targets


def finish_stop(store: Store, targets: list[tuple[int, dict]], recs: list[tuple[str, dict]], grace: float = 2.0,
                kind: str = K_PROC) -> list[str]:
    """Wait for the terminated groups (one grace period for all), SIGKILL what is left, forget the
    records in one transaction. Returns problems (groups that would not die)."""
    deadline = time.monotonic() + grace
    left = _remaining(targets)
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = _remaining(left)
    for pgid, data in left:
        _signal_group(pgid, data, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = _remaining(left)
    problems = [f"process group {pgid} in {data.get('ns')} did not die" for pgid, data in left]
    store.forget_many(kind, [name for name, _ in recs])
    return problems


def process_pid(store: Store, ns: str, name: str) -> int | None:
    for _, n, data in store.records(K_PROC):
        if n == f"{ns}/{name}":
            return data.get("pid")
    return None


# -- starting -----------------------------------------------------------------------------------
class Starter:
    """Starts services. ``begin()`` records every intent and starts the launchers, each waiting
    for its list (an interpreter's start-up overlaps the namespaces' creation); ``release()``
    hands the built-in responders to theirs once the namespaces exist (they bind to the wildcard
    address, so they only need their namespaces): they start in the background while the links,
    addresses, routes and nft tables are being configured; ``finish()`` releases the launcher of
    the platform services (DNS, PaaS: they need the network), collects every PID (a launcher
    reports once every socket is bound) and starts the ``command:`` services (which may expect a
    configured network) with ``ip netns exec``. ``finish()`` also runs on errors, so whatever was
    started gets recorded (a launcher never released exits without starting anything)."""

    def __init__(self, store: Store, procs: list[Process]):
        self.store = store
        self.procs = procs
        self.launch: dict[tuple[str, bool], list[Process]] = {}   # (interpreter, late) -> services
        self.others: list[Process] = []
        for p in procs:
            (self.launch.setdefault(_launch_key(p), []) if _launched(p) else self.others).append(p)
        self.cmdlines = {key: [key[0], "-I", "-S", RESPONDER, "--launch", uuid.uuid4().hex[:16]]
                         for key in self.launch}
        self.intents: dict[str, dict] = {}
        self.running: list[tuple[list[str], list[Process], subprocess.Popen, object]] = []
        self.waiting: dict[tuple[str, bool], tuple[subprocess.Popen, bytes]] = {}   # launchers not released
        self.done: dict[str, dict] = {}
        self.listening: list[str] = []   # started by the launcher, sockets bound
        self.failed: list[str] = []      # started by the launcher but never listening (see their logs)
        self.started: list[str] = []
        self.finished = False

    def begin(self) -> None:
        if not self.procs:
            return
        for p in self.procs:
            key = proc_key(p)
            self.intents[key] = {"ns": p.ns, "argv": list(p.argv), "pid": None, "kind": p.kind,
                                 "resource": p.resource, "tcp": list(p.tcp), "udp": list(p.udp),
                                 "log": str(log_path(self.store, p.ns, p.name))}
            if _launched(p):
                self.intents[key]["cmdline"] = self.cmdlines[_launch_key(p)]
        self.store.record_many(K_PROC, self.intents)
        for key, group in self.launch.items():
            self._spawn(key, group)

    def release(self, late: bool = False) -> None:
        """Hand its services to each launcher waiting for them (``late``: the platform services')."""
        for key in [k for k in self.waiting if k[1] == late]:
            proc, spec = self.waiting.pop(key)
            proc.stdin.write(spec)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]

    def _spawn(self, key: tuple[str, bool], group: list[Process]) -> None:
        spec = {"parent": os.getpid(), "timeout": 10,
                "items": [{"key": proc_key(p), "ns": p.ns, "args": p.argv[4:], "title": p.resource or p.name,
                           "log": self.intents[proc_key(p)]["log"], "etc": p.name == "webapp"}
                          for p in group]}
        out = tempfile.TemporaryFile()
        proc = subprocess.Popen(self.cmdlines[key], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                                     "LANG": "C.UTF-8"})
        self.running.append((self.cmdlines[key], group, proc, out))
        self.waiting[key] = (proc, json.dumps(spec).encode())

    def finish(self, start_others: bool = True) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            if start_others:  # the network is configured: the platform services can start
                self.release(late=True)
            self._dismiss()
            errors = self._collect_launched()
            if errors:
                raise errors[0]
            for p in (self.others if start_others else []):
                self._start_command(p)
        finally:
            self.store.record_many(K_PROC, self.done)
        self.started += [proc_key(p) for p in self.procs if proc_key(p) in self.done]

    def _dismiss(self) -> None:
        """The launchers never released (an error came first) exit, having started nothing."""
        for proc, _spec in self.waiting.values():
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=60)
        self.running = [r for r in self.running if all(r[2] is not p for p, _ in self.waiting.values())]
        self.waiting.clear()

    def _collect_launched(self) -> list[Exception]:
        errors: list[Exception] = []
        for cmd, group, proc, out in self.running:
            rc = proc.wait(timeout=60)
            out.seek(0)
            text = out.read().decode(errors="replace")
            out.close()
            head, _, tail = text.rpartition("\n")   # the result is the last line
            try:
                res = json.loads(tail or head or "{}")
            except ValueError:
                res = {}
            for key, r in res.items():
                self.done[key] = {**self.intents[key], "pid": r["pid"], "pgid": r["pid"]}
                (self.listening if r.get("ready") else self.failed).append(key)
            if rc != 0 or len(res) != len(group):
                errors.append(kernel.KernelError(cmd, rc, text or "launcher failed"))
        return errors

    def _start_command(self, p: Process) -> None:
        key = proc_key(p)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8", **p.env}
        with open(self.intents[key]["log"], "ab") as fh:
            # a new session: its own process group, which whatever it forks joins
            child = subprocess.Popen(kernel.ns_exec_argv(p.ns, list(p.argv)), stdin=subprocess.DEVNULL,
                                     stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=p.cwd,
                                     start_new_session=True, close_fds=True)
        self.done[key] = {**self.intents[key], "pid": child.pid, "pgid": child.pid}


# -- state ---------------------------------------------------------------------------------------
@dataclass
class ServiceState:
    key: str            # NS/NAME
    resource: str | None
    kind: str
    state: str          # running | failed
    reason: str = ""
    command: str = ""
    log: str = ""
    pid: int | None = None

    def to_dict(self) -> dict:
        return {"key": self.key, "resource": self.resource, "kind": self.kind, "state": self.state,
                "reason": self.reason, "command": self.command, "log": self.log, "pid": self.pid}


def _sockets(pid: int) -> list[tuple[str, str, int, int]]:
    """(proto, local address, port, inode) of listening TCP and bound UDP sockets in the
    network namespace of ``pid`` (its /proc/PID/net view)."""
    out = []
    for proto, fname, state in (("tcp", "tcp", "0A"), ("udp", "udp", "07"), ("tcp", "tcp6", "0A"),
                                ("udp", "udp6", "07")):
        try:
            lines = Path(f"/proc/{pid}/net/{fname}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == state:
                addr, port = parts[1].split(":")
                out.append((proto, _address(addr), int(port, 16), int(parts[9])))
    return out


def _address(hexaddr: str) -> str:
    """An address of /proc/net/{tcp,udp}[6] as text (IPv6 wildcard ``::``, loopback ``::1``)."""
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return ".".join(str(b) for b in reversed(raw))
    words = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4)]
    if words == [0, 0, 0, 0]:
        return "::"
    if words == [0, 0, 0, 1]:
        return "::1"
    return ":".join(f"{w:08x}" for w in words)


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _socket_inodes(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    return inodes


def _log_tail(path: str, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _command_state(key: str, data: dict, members: list[int], final: bool) -> ServiceState | None:
    """The state of a ``command:`` service, or None while it may still come up."""
    st = ServiceState(key, data.get("resource"), "command", FAILED, command=" ".join(data.get("argv", [])[2:]),
                      log=data.get("log", ""), pid=data.get("pid"))
    if not members:
        tail = _log_tail(st.log)
        st.reason = "exited" + (f": {tail}" if tail else "")
        return st
    socks = _sockets(members[0])
    mine = _socket_inodes(members)
    wanted = [("tcp", p) for p in data.get("tcp", [])] + [("udp", p) for p in data.get("udp", [])]
    missing = []
    for proto, port in wanted:
        if any(s[0] == proto and s[2] == port and s[3] in mine and not _loopback(s[1]) for s in socks):
            continue
        missing.append((proto, port))
    if not missing:
        st.state = RUNNING
        return st
    if not final:
        return None
    proto, port = missing[0]
    if any(s[0] == proto and s[2] == port and s[3] not in mine for s in socks):
        st.reason = f"{proto}/{port} is taken by another process"
    else:
        own = sorted({f"{s[0]}/{s[1]}:{s[2]}" for s in socks if s[3] in mine})
        st.reason = f"not listening on {proto}/{port}" + (f" (it listens on {', '.join(own)})" if own else "")
    return st


def service_states(store: Store, keys: list[str] | None = None, timeout: float = 0.0) -> list[ServiceState]:
    """The state of each recorded service (or of ``keys``). ``command:`` services not yet
    listening are polled for up to ``timeout`` seconds (they were just started)."""
    wanted = None if keys is None else set(keys)
    recs = {n: d for _, n, d in store.records(K_PROC) if wanted is None or n in wanted}
    out: dict[str, ServiceState] = {}
    deadline = time.monotonic() + timeout
    while True:
        final = time.monotonic() >= deadline
        pending = {n: d for n, d in recs.items() if n not in out}
        members = group_members({d.get("pgid") or d.get("pid") for d in pending.values() if d.get("pid")})
        for name, data in pending.items():
            pgid = data.get("pgid") or data.get("pid")
            live = members.get(pgid, []) if pgid else []
            if data.get("kind") == "command":
                st = _command_state(name, data, live, final)
                if st is not None:
                    out[name] = st
                continue
            alive = bool(live) and rec_running(data)
            out[name] = ServiceState(name, data.get("resource"), data.get("kind") or "responder",
                                     RUNNING if alive else FAILED, "" if alive else "not running",
                                     log=data.get("log", ""), pid=data.get("pid"))
        if final or len(out) == len(recs):
            break
        time.sleep(0.05)
    return [out[n] for n in sorted(out)]
