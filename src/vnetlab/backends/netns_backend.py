"""The netns backend: the lab on a real kernel (Linux network namespaces, root).

``apply(lab, topology)`` = ``plan`` (pure, from the engine) + ``netns.apply`` (reconcile in
place, write-ahead records in the lab's store). ``probe`` sends a real packet from inside
the source's namespace; ``route_n`` runs the real ``route -n`` in a web app's sandbox.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

from ..model.errors import EmulationNotRunning, EmulationUnavailable, ResourceNotFound
from .netns.apply import K_CAPTURE, K_NETNS, K_PROC, apply as _kapply, has_records, load_applied, clean as _kclean, pid_alive, teardown as _kteardown
from .netns import exec as nx
from .netns import kernel
from .netns.plan import lab_id_for, plan_with_names
from .netns.errors import NamespaceConflict, ServiceNotStarted, TeardownError
from .netns.processes import service_states


def check() -> None:
    problems = kernel.check_prerequisites()
    if problems:
        raise EmulationUnavailable("The netns emulation is not available here: " + "; ".join(problems) + ".")


def lab_id(lab) -> str:
    return lab_id_for(lab.home)


def names(lab, topology=None):
    topology = topology if topology is not None else lab.topology()
    return plan_with_names(topology, lab_id(lab), services=False)[1]


SERVICE_TIMEOUT = 5.0   # seconds a ``command:`` gets to listen on its port


@contextmanager
def apply_lock(lab):
    """One process at a time changes this lab's kernel state (a CLI change while ``vnetlab
    serve`` runs): an exclusive ``flock`` on a file in the lab's home, released when the
    holder ends, however it ends."""
    path = Path(lab.home) / "netns.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def apply(lab, topology, wait: bool = True):
    """Make the kernel hold the lab. Under the lab's lock, the stored lab is applied again
    until the store's version did not move meanwhile: whoever changed the lab last, the
    kernel ends with the latest version (``topology`` is used only when nothing is stored)."""
    check()
    started: list[str] = []
    listening: set[str] = set()
    reports = []
    with apply_lock(lab):
        while True:
            version = lab.store.version()
            current = lab.topology() if lab.exists() else topology
            desired, _ = plan_with_names(current, lab_id(lab), tls_dir=str(Path(lab.home) / "tls"))
            issue_service_certs(lab, desired)
            rep = _kapply(desired, lab.store)
            reports.append(rep)
            started += rep.started
            listening |= set(rep.listening)
            if lab.store.version() == version:
                break
    record_changes(lab, reports)
    # the launcher already saw the built-in services bind their sockets: the others are checked
    unconfirmed = [key for key in started if key not in listening]
    if wait and unconfirmed:
        failed = [s for s in service_states(lab.store, unconfirmed, SERVICE_TIMEOUT) if s.state != "running"]
        if failed:
            raise ServiceNotStarted(failed)
    return rep


def issue_service_certs(lab, desired) -> None:
    """The certificates (the lab's CA) of the emulated PaaS services, for their FQDNs."""
    from ..api.tls import issue_cert
    for p in desired.processes:
        if "--paas" not in p.argv:
            continue
        spec = json.loads(p.argv[p.argv.index("--paas") + 1])
        if spec.get("cert") and spec.get("fqdns"):
            issue_cert(lab.home, spec["fqdns"], Path(spec["cert"]), Path(spec["key"]))


def in_sync(lab) -> bool:
    """The kernel holds what the last ``apply`` was asked for: it finished (not killed half-way)
    and every recorded service is running. ``Lab.up`` re-applies an unchanged topology
    otherwise (which restarts the services that died)."""
    from .netns.apply import APPLY_META
    if lab.store.get_meta(APPLY_META) != "ok":
        return False
    return all(s.state == "running" for s in service_states(lab.store))


def teardown(lab) -> None:
    """Remove what the lab recorded. Refused, forgetting nothing, when it cannot be removed
    (not root, a tool missing) or something would not go (``TeardownError``)."""
    store = lab.store
    recorded = has_records(store)
    problems = kernel.check_prerequisites()
    if problems:
        if recorded:
            raise TeardownError("The lab's namespaces and processes cannot be removed here ("
                                + "; ".join(problems) + "); nothing was changed. Run `vnetlab down` as root.")
        return
    with apply_lock(lab):
        _kteardown(store)


def clean(lab) -> list[str]:
    """Remove whatever the store recorded (after a crash), never raising."""
    check()
    return _kclean(lab.store)


def namespace_of(lab, name: str) -> str:
    """The namespace of a VM, NIC, web app (its sandbox; ``app#1`` for instance 1), internet
    host or VNet (its fabric)."""
    n = names(lab)
    low = name.lower()
    ns = n.endpoints.get(low) or n.fabrics.get(low)
    if ns is None:
        raise ResourceNotFound(f"No VM, web app, internet host or virtual network named '{name}' in the lab.")
    return owned(lab, ns)


def owned(lab, ns: str) -> str:
    """``ns`` if this lab created it (its store records it); nothing runs in another's."""
    if not any(n == ns for _, n, _ in lab.store.records(K_NETNS)):
        raise NamespaceConflict(f"Namespace {ns} was not created by the lab in {lab.home}: nothing runs in it "
                                "(is the lab up with --backend netns here?).")
    return ns


def route_n(lab, app_name: str) -> str:
    return nx.run_in(namespace_of(lab, app_name), ["route", "-n"], timeout=10).stdout


_DETAIL = {"Connected": {"Tcp": "TCP handshake completed", "Udp": "UDP reply received",
                         "Icmp": "ICMP echo reply received"},
           "Refused": {"Tcp": "TCP reset (connection refused)", "Udp": "ICMP port unreachable"},
           "TimedOut": "no answer within the timeout (silently dropped)",
           "Unreachable": "the sender's kernel reported the network unreachable"}


SMB_ACCESS_DENIED, SMB_LOGON_FAILURE = 0xC0000022, 0xC000006D   # NTSTATUS values an SMB server answers


def probe(lab, trace: dict, timeout: float = 1.0) -> dict:
    """Send the traced flow for real from inside the source's namespace. A flow the engine says a
    PaaS service took (its ``admission``) is asked of the service itself once the connection
    opens: its answer says ``Connected`` (admitted) or ``Denied`` (refused, with its code)."""
    flow = trace["flow"]
    ns = namespace_of(lab, flow["source"])
    proto = flow["protocol"]
    dst, port = flow["destination_ip"], flow.get("port")
    verdict = nx.probe_many(ns, [(proto.lower(), dst, port)], timeout)[0]
    d = _DETAIL.get(verdict, "")
    if isinstance(d, dict):
        d = d.get(proto, "")
    where = f"{dst}:{port}" if port else dst
    if verdict == "Connected" and trace.get("admission") is not None:
        verdict, d = _service_answer(lab, ns, flow, max(timeout, 2.0), trace.get("headers"))
    return {"verdict": verdict, "detail": f"{proto} {where} from {ns}: {d}", "namespace": ns}


def _service_answer(lab, ns: str, flow: dict, timeout: float, headers: dict | None = None) -> tuple[str, str]:
    """(verdict, detail) from the PaaS service's own answer to a real client's request."""
    from ..engine.paas import endpoint_at
    endpoint = endpoint_at(lab.network(), flow["destination_ip"])
    if endpoint is None:
        return "Connected", _DETAIL["Connected"]["Tcp"]
    host = flow["destination"] if flow["destination"] != flow["destination_ip"] else flow["destination_ip"]
    ca = Path(lab.home) / "tls" / "ca.pem"
    got = nx.probe_service(ns, endpoint.kind, flow["destination_ip"], flow["port"], host,
                           str(ca) if ca.is_file() and host != flow["destination_ip"] else None, timeout,
                           headers=headers)
    if "error" in got:
        return "Connected", f"TCP handshake completed; the service did not answer: {got['error']}"
    if "smb_status" in got:   # admitted: asked for credentials; refused by the firewall: access denied
        status = got["smb_status"]
        if status == SMB_LOGON_FAILURE:
            return "Connected", "SMB2 session setup answered STATUS_LOGON_FAILURE (admitted; no credentials sent)"
        if status == SMB_ACCESS_DENIED:
            return "Denied", "SMB2 session setup refused: STATUS_ACCESS_DENIED (the account's firewall)"
        return "Connected", f"SMB2 session setup answered {status if isinstance(status, str) else hex(status)}"
    if "login" in got:
        return ("Connected", "TDS login acknowledged (LOGINACK)") if got["login"] else \
            ("Denied", f"TDS login refused: error {got['number']}")
    if got["status"] in (200, 401):  # 401: a key vault admitted the caller, who brought no token
        return "Connected", f"HTTP {got['status']}"
    return "Denied", f"HTTP {got['status']} {got.get('code') or ''}".rstrip()


def observe_matrix(lab, result: dict, timeout: float = 1.0) -> dict:
    """The engine's ``matrix`` (by class) beside the real kernel's: from each class's first member,
    the matrix's flows for real (one probe process per source class, flows concurrent) to the
    destination each class pair was traced to (the class's second member within a class). A PaaS
    destination (``--paas``) whose TCP connection opens is then asked for real, as ``check`` asks it
    (``_service_answer``), so its ``Denied`` is seen. Every probed class pair becomes a cell with
    ``verdicts`` (the engine's), ``observed`` and ``agree``; ``agree`` at the top says every cell
    agrees."""
    from ..engine.matrix import paas_destinations, parse_flows
    if lab.backend_name != "netns":
        raise EmulationNotRunning("This lab is not emulated: run `vnetlab up FILE --backend netns` first.")
    check()
    flows = parse_flows(result["ports"])
    labels = result["ports"]
    engine = {(c["source"], c["destination"]): c["verdicts"] for c in result["cells"]}
    net = lab.network()
    ip_of = {("", ep.name.lower()): str(ep.ip) for ep in net.endpoints()}
    ip_of.update({(ep.kind, ep.name.lower()): str(ep.ip) for ep in paas_destinations(net)})
    classes = result["classes"]

    def address(cls: dict, member: str) -> str:
        return ip_of.get((cls["kind"], member.lower())) or ip_of[("", member.lower())]

    cells = []
    for i, src_cls in enumerate(classes):
        src_members = src_cls["members"]
        targets = [(j, members[1] if i == j else members[0]) for j, members in
                   enumerate(c["members"] for c in classes) if i != j or len(members) > 1]
        if not targets or i >= _source_classes(result):
            continue
        ns = namespace_of(lab, src_members[0])
        probes = [(proto.lower(), address(classes[j], dst), port) for j, dst in targets for proto, port in flows]
        seen = iter(nx.probe_many(ns, probes, timeout))
        for j, dst in targets:
            observed = {label: next(seen) for label in labels}
            for label, (proto, port) in zip(labels, flows, strict=True):
                if observed[label] == "Connected" and proto == "Tcp" and _is_paas(classes[j]):
                    ip = address(classes[j], dst)
                    flow = {"destination": ip, "destination_ip": ip, "port": port}
                    observed[label] = _service_answer(lab, ns, flow, max(timeout, 2.0))[0]
            verdicts = engine.get((i, j), result["default"])
            cells.append({"source": i, "destination": j, "probed": [src_members[0], dst],
                          "verdicts": verdicts, "observed": observed, "agree": observed == verdicts})
    return {**result, "backend": "netns", "cells": cells, "agree": all(c["agree"] for c in cells)}


def _is_paas(cls: dict) -> bool:
    from ..engine.matrix import PAAS_KIND
    return cls["kind"] in set(PAAS_KIND.values()) | {"private_endpoint"}


def _source_classes(result: dict) -> int:
    """The matrix's source classes come first; PaaS destinations (``--paas``) after them send nothing."""
    return sum(1 for c in result["classes"] if not _is_paas(c))


def capture_foreground(lab, ns: str, argv: list[str]) -> int:
    """Run ``argv`` (tcpdump) in ``ns`` in the foreground and return its exit status, leaving
    nothing behind however it ends:

    - its PID is recorded in the lab's store while it runs, so ``down``/``clean`` (from another
      terminal) stop it by that PID, and the namespace is not kept alive by it;
    - SIGTERM/SIGHUP to us stop it (by its PID), Ctrl-C reaches it as part of the foreground
      process group (it prints its summary and exits);
    - if we are killed outright (SIGKILL), the kernel sends it SIGTERM (``PR_SET_PDEATHSIG``,
      kept across the exec because the caller passes ``-Z root``: no credential change).
    """
    import ctypes
    import signal
    import subprocess

    from .netns.kernel import ns_exec_argv

    def pdeathsig() -> None:  # runs in the child between fork and exec (we are single-threaded)
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    proc = subprocess.Popen(ns_exec_argv(ns, list(argv)), preexec_fn=pdeathsig)
    key = f"{ns}/{proc.pid}"
    lab.store.record(K_CAPTURE, key, {"ns": ns, "argv": list(argv), "pid": proc.pid})

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            return proc.wait(timeout=2)  # it got the Ctrl-C too
        except subprocess.TimeoutExpired:
            return 130
    finally:
        if proc.poll() is None:
            proc.terminate()  # our own child, by its PID
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if not pid_alive(proc.pid):
            lab.store.forget(K_CAPTURE, key)


# -- what the emulation did and holds -------------------------------------------------------------
CHANGES_META = "netns_changes"


def record_changes(lab, reports) -> None:
    """What the last apply changed, by namespace (``vm-NAME``, ``fab-VNET``, ...): created,
    changed (routes, rules, NSGs, links...), restarted (services), removed."""
    prefix = f"vl{lab_id(lab)}-"
    created, removed, changed, restarted = set(), set(), set(), set()
    for rep in reports:
        created |= set(rep.created_namespaces)
        removed |= set(rep.deleted_namespaces)
        changed |= set(rep.changed_namespaces)
        restarted |= {k for k in rep.started if k.split("/")[0] not in created}
    short = lambda xs: sorted(x.removeprefix(prefix) for x in xs)  # noqa: E731
    lab.store.set_meta(CHANGES_META, json.dumps({
        "id": uuid.uuid4().hex, "created": short(created - removed), "changed": short(changed - created - removed),
        "restarted": short(restarted), "removed": short(removed - created)}))


def last_changes(lab) -> dict | None:
    raw = lab.store.get_meta(CHANGES_META)
    return json.loads(raw) if raw else None


def apply_unfinished(lab) -> bool:
    """The last apply was interrupted (killed): the kernel may hold neither version."""
    from .netns.apply import APPLY_META
    return lab.store.get_meta(APPLY_META) == "running"


def ps(lab) -> list[dict]:
    """Each namespace of the lab with the resource it belongs to, its interfaces and its
    processes (PID, state): what ``vnetlab ps`` shows."""
    desired = load_applied(lab.store)
    if desired is None:
        return []
    n = names(lab)
    owners: dict[str, list[str]] = {}
    for name, ns in list(n.endpoints.items()) + list(n.fabrics.items()):
        owners.setdefault(ns, []).append(name)
    ifaces: dict[str, list[str]] = {}
    for b in desired.bridges:
        ifaces.setdefault(b.ns, []).append(b.name)
    for v in desired.veths:
        for ns, dev in v.ends():
            ifaces.setdefault(ns, []).append(dev)
    services: dict[str, list[dict]] = {}
    for st in service_states(lab.store):
        services.setdefault(st.key.split("/")[0], []).append(
            {"name": st.key.split("/", 1)[1], "pid": st.pid, "state": st.state, "reason": st.reason, "log": st.log})
    prefix = f"vl{lab_id(lab)}-"
    rows = []
    for ns in sorted(x.name for x in desired.namespaces):
        names_ = sorted(owners.get(ns, []), key=lambda x: (":" in x or "#" in x, len(x), x))
        short = ns.removeprefix(prefix)
        rows.append({"resource": names_[0] if names_ else short,
                     "kind": short.split("-", 1)[0] if names_ else short, "namespace": ns,
                     "exists": kernel.netns_exists(ns), "interfaces": sorted(ifaces.get(ns, [])),
                     "processes": services.get(ns, [])})
    return rows


def logs(lab, name: str) -> list[tuple[str, str, str]]:
    """(service, log path, text) of each service in NAME's namespace."""
    ns = namespace_of(lab, name)
    out = []
    for _, key, data in lab.store.records(K_PROC):
        if data.get("ns") == ns and data.get("log"):
            try:
                text = Path(data["log"]).read_text(errors="replace")
            except OSError:
                text = ""
            out.append((key.split("/", 1)[1], data["log"], text))
    return sorted(out)
