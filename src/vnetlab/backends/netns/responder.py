"""The built-in service run inside emulated VMs and web-app sandboxes (stdlib only).

VM mode: listen on TCP ports (HTTP: ``GET /`` -> ``200 hello from NAME``; ``GET /ip`` -> the
client's address as this host sees it, what an internet host's allow-list would match) and UDP
ports (echo every datagram back)::

    python -m vnetlab.backends.netns.responder --name rg1vm1 --tcp 80 --tcp 443 --udp 53

Web-app mode, like the field note's ``index.php``: ``GET /check?host=H&port=P`` tries a
TCP connect (2 s) from inside the sandbox and answers ``Connection OK`` or
``Connection NOK``; ``GET /`` answers a page naming the app::

    python -m vnetlab.backends.netns.responder --webapp contoso-app --port 80 \
        --backend 10.0.0.4:80          # default target of /check without parameters

No reverse DNS: ``http.server`` logs the client via ``address_string()``, which by default
may resolve names; it is overridden so nothing ever leaves the namespace for a resolver.

Launcher mode (what the backend uses to start every built-in service of a lab at once)::

    python -I -S responder.py --launch TOKEN < spec.json

reads ``{"parent": PID, "items": [{"key", "ns", "args", "log"}, ...]}`` (nothing: it exits,
having started nothing) and, for each item, forks a child that becomes a session leader, is
in the namespace, gets its own mount namespace with ``/etc/netns/NS/*`` bound over ``/etc/*``
(what ``ip netns exec`` does, so it has the namespace's resolv.conf), has its sockets bound
and only then reports ready on a pipe. For a plain responder the launcher itself enters the
namespace (``setns`` on ``/run/netns/NS``) and binds the sockets before forking: the child
inherits both and runs less Python (a forked child copies every page it touches); the
platform services (DNS, PaaS) enter and bind in the child. The HTTP server, the log file and any thread
are made at the first connection or datagram (the kernel queues them meanwhile): an idle
responder costs its fork and its sockets only. The launcher waits for every child to be
listening (or to have died), prints ``{key: {"pid": PID, "ready": bool}}`` as JSON and exits.
Starting N services this way costs one interpreter start and N forks instead of N
``ip netns exec`` + N interpreter starts (~60 ms each). The children keep the launcher's
command line (``... --launch TOKEN``, TOKEN unique per launch), which is what the backend
records next to each PID.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys

BACKLOG = 1024  # many concurrent probes: a backlog of 5 drops SYNs


def _server_class():
    """The HTTP server class. ``http.server`` is imported here, at a responder's first
    connection, not by the launcher: a smaller launcher forks faster and its children copy
    fewer pages (about 1 ms less per child)."""
    import socketserver
    from http.server import ThreadingHTTPServer

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = BACKLOG

        def server_bind(self) -> None:  # skip HTTPServer's getfqdn() (a DNS lookup)
            socketserver.TCPServer.server_bind(self)
            host, port = self.server_address[:2]
            self.server_name, self.server_port = str(host), port

    return Server


def _handler(name: str, webapp: bool, backend: tuple[str, int] | None, check_timeout: float):
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import parse_qs, urlsplit

    class H(BaseHTTPRequestHandler):
        server_version = "vnetlab-responder"
        sys_version = ""

        def address_string(self) -> str:  # never reverse-resolve
            return self.client_address[0]

        def log_message(self, fmt: str, *args) -> None:  # the client, and the address it reached (a VM may have several)
            local = self.connection.getsockname()
            sys.stderr.write(f"{self.client_address[0]} -> {local[0]}:{local[1]} {fmt % args}\n")

        def _send(self, code: int, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if webapp and url.path == "/check":
                q = parse_qs(url.query)
                host = q.get("host", [backend[0] if backend else ""])[0]
                try:
                    port = int(q.get("port", [backend[1] if backend else 80])[0])
                except ValueError:
                    return self._send(400, "bad port\n")
                if not host:
                    return self._send(400, "host required\n")
                try:
                    with socket.create_connection((host, port), timeout=check_timeout):
                        ok = True
                except OSError:
                    ok = False
                return self._send(200, "Connection OK" if ok else "Connection NOK")
            if url.path == "/ip" and not webapp:
                return self._send(200, f"{self.client_address[0]}\n")
            if url.path == "/":
                if webapp:
                    return self._send(200, f"web app {name}\n")
                return self._send(200, f"hello from {name}\n")
            return self._send(404, "not found\n")

    return H


def _tcp_socket(bind: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's allow_reuse_address
    s.bind((bind, port))
    s.listen(BACKLOG)
    return s


def _serving(server_class, listening: socket.socket, handler):
    """The HTTP server around an already listening socket."""
    srv = server_class(listening.getsockname(), handler, bind_and_activate=False)
    srv.socket.close()
    srv.socket = listening
    srv.server_name, srv.server_port = listening.getsockname()[:2]
    return srv


def _udp_socket(bind: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    return s


def _sockets(a) -> tuple[list[socket.socket], list[socket.socket]]:
    """The (listening TCP, bound UDP) sockets of a responder's arguments, in the namespace of the
    calling process."""
    tcp_ports = a.tcp + a.port or ([80] if a.webapp is not None else [])
    return [_tcp_socket(a.bind, p) for p in tcp_ports], [_udp_socket(a.bind, p) for p in a.udp]


def _udp_echo(s: socket.socket) -> None:
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data, addr)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vnetlab-responder")
    ap.add_argument("--name", default="vm")
    ap.add_argument("--tcp", type=int, action="append", default=[])
    ap.add_argument("--udp", type=int, action="append", default=[])
    ap.add_argument("--webapp", metavar="NAME")
    ap.add_argument("--port", type=int, action="append", default=[])
    ap.add_argument("--backend", help="HOST:PORT for /check without parameters")
    ap.add_argument("--check-timeout", type=float, default=2.0)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--dns", metavar="JSON", help="run the DNS server of services.py with this spec")
    ap.add_argument("--paas", metavar="JSON", help="run the PaaS endpoint of services.py with this spec")
    return ap


def _services():
    """services.py beside this file (this script runs isolated: no package imports)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "services.py")
    spec = importlib.util.spec_from_file_location("vnetlab_netns_services", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _ready(ready_fd: int | None):
    def tell() -> None:
        if ready_fd is not None:  # every socket is bound: tell the launcher
            os.write(ready_fd, b"1")
            os.close(ready_fd)
    return tell


def _log_to(path: str) -> None:
    """Standard output and error (descriptors and ``sys`` objects) append to ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def main(argv: list[str] | None = None, ready_fd: int | None = None, parsed=None, log: str | None = None,
         sockets: tuple[list, list] | None = None) -> int:
    """Serve. With ``log`` (started by the launcher), output goes to that file from the first
    connection or datagram on (nothing before: creating 1,000 files costs). ``sockets``: the
    (listening TCP, bound UDP) sockets, already made by the launcher (``_sockets``)."""
    a = parsed if parsed is not None else _parser().parse_args(argv)
    if a.dns or a.paas:  # the platform services (services.py): they log from the start
        import json
        if log:
            _log_to(log)
        svc = _services()
        if a.dns:
            svc.dns_main(json.loads(a.dns), _ready(ready_fd))
        else:
            svc.paas_main(json.loads(a.paas), _ready(ready_fd), _libc())
        return 0
    webapp = a.webapp is not None
    name = a.webapp if webapp else a.name
    tcp_ports = a.tcp + a.port or ([80] if webapp else [])
    backend = None
    if a.backend:
        h, _, p = a.backend.rpartition(":")
        backend = (h, int(p))
    listening, udp = sockets if sockets is not None else _sockets(a)
    if ready_fd is not None:  # every socket is bound: tell the launcher
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    try:
        # The kernel queues connections and datagrams from here on. The HTTP server is built
        # at the first one: a lab's 1,000 VMs that nobody probes cost no more than their
        # sockets (a forked child that runs Python copies every page it touches).
        if listening or udp:
            select.select(listening + udp, [], [])
        if log:
            _log_to(log)
        sys.stderr.write(f"responder {name}: tcp {tcp_ports} udp {a.udp}\n")
        sys.stderr.flush()
        handler = _handler(name, webapp, backend, a.check_timeout)
        server_class = _server_class()
        loops = [_serving(server_class, s, handler).serve_forever for s in listening]
        loops += [lambda s=s: _udp_echo(s) for s in udp]
        # the last loop runs in this thread: a VM's one port costs no thread. ``threading`` is
        # imported here, not by the launcher: a module with an after-fork hook would run it in
        # every forked child
        import threading
        for loop in loops[:-1]:
            threading.Thread(target=loop, daemon=True).start()
        (loops[-1] if loops else threading.Event().wait)()
    except KeyboardInterrupt:
        pass
    return 0


# -- launcher --------------------------------------------------------------------------------
CLONE_NEWNET, CLONE_NEWNS = 0x40000000, 0x00020000
MS_BIND, MS_REC, MS_SLAVE = 0x1000, 0x4000, 0x80000
PR_SET_PDEATHSIG = 1


def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _enter_net(libc, ns: str) -> None:
    """Move this process into the network namespace ``ns`` (``/run/netns/NS``)."""
    if not ns.startswith("vl") or "/" in ns:
        raise ValueError(f"bad namespace {ns!r}")
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _check(libc.setns(fd, CLONE_NEWNET), f"setns {ns}")
    finally:
        os.close(fd)


def _enter(libc, ns: str, etc: bool = True, net: bool = True) -> None:
    """Become what ``ip netns exec NS`` would make us (network + private /etc/netns view; the
    latter only with ``etc``: a mount namespace copies every mount of the host, which costs).
    ``net`` False: already in the namespace (forked by the launcher from inside it)."""
    if net:
        _enter_net(libc, ns)
    if not etc:
        return
    etc = f"/etc/netns/{ns}"
    if os.path.isdir(etc):
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
        for f in sorted(os.listdir(etc)):
            if f.startswith("."):
                continue
            src, dst = os.path.join(etc, f).encode(), os.path.join("/etc", f).encode()
            _check(libc.mount(src, dst, b"none", MS_BIND, None), f"bind {etc}/{f} on /etc/{f}")


def _child(libc, item: dict, ready_w: int, sockets: tuple[list, list] | None = None) -> None:
    os.setsid()  # a session and process group of its own: stopped as a group
    # named after its resource in ``ps -e``/``top`` (the command line stays the launcher's,
    # which is what the backend records to recognise it)
    comm = os.open("/proc/self/comm", os.O_WRONLY)   # prctl(PR_SET_NAME) without ctypes in the child
    try:
        os.write(comm, item["comm"])
    finally:
        os.close(comm)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the log is opened by main() at the first connection, or on an error
        os.dup2(null, fd)
    # every other descriptor (the launcher's pipes to the children forked before this one):
    # a few close_range() calls, not one close() per descriptor (O(N^2) over a launch)
    keep = sorted([ready_w] + [s.fileno() for group in (sockets or ([], [])) for s in group])
    low = 3
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 2**31 - 1)
    try:
        _enter(libc, item["ns"], item.get("etc", True), net=sockets is None)
        main(ready_fd=ready_w, parsed=item["parsed"], log=item["log"], sockets=sockets)
    except BaseException as e:  # noqa: BLE001 - the log says why; the launcher sees no "ready"
        try:
            _log_to(item["log"])
            sys.stderr.write(f"responder in {item.get('ns')}: {type(e).__name__}: {e}\n")
            sys.stderr.flush()
        finally:
            os._exit(1)
    os._exit(0)


def _premade(libc, item: dict) -> tuple[list, list] | None:
    """A plain responder's sockets, made by the launcher from inside the item's namespace, which
    the child then inherits with the sockets (it does not run that Python itself: a forked child
    copies every page it touches). None for the platform services (they make their own) or on an
    error (the child then meets it, and its log says why)."""
    parsed = item["parsed"]
    if parsed.dns or parsed.paas:
        return None
    try:
        _enter_net(libc, item["ns"])
        return _sockets(parsed)
    except (OSError, ValueError):
        return None


def launch(token: str) -> int:
    import json
    import select
    import signal
    import time
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the applying process (kill -9 mid-up)
    raw = sys.stdin.read()
    if not raw.strip():  # started ahead, then not needed (the apply stopped): nothing to do
        sys.stdout.write("{}")
        return 0
    spec = json.loads(raw)
    if spec.get("parent") and os.getppid() != spec["parent"]:
        return 3  # the applying process is already gone
    timeout = float(spec.get("timeout", 10))
    pending: dict[int, tuple[str, float]] = {}   # pipe -> (key, when its report is due)
    result: dict[str, dict] = {}
    ap = _parser()
    for item in spec["items"]:  # parse once here, not in every child
        item["parsed"] = ap.parse_args(list(item["args"]))
        item["comm"] = ("vl:" + item.get("title", "responder"))[:15].encode()
    import gc
    gc.freeze()  # children share these pages: their GC must not touch (and so copy) them
    poller = select.poll()  # not select(): more than 1024 descriptors with big labs
    most = _pipes_at_once()
    for item in spec["items"]:
        if len(pending) >= most:  # a low limit of open files: wait for reports, which close pipes
            _reports(poller, pending, result, leave=most - 1)
        sockets = _premade(libc, item)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(r)
                _child(libc, item, w, sockets)
            finally:
                os._exit(1)
        os.close(w)
        for s in [s for group in (sockets or ([], [])) for s in group]:
            s.close()  # the child holds them
        pending[r] = (item["key"], time.monotonic() + timeout)   # its report is due by then
        poller.register(r, select.POLLIN | select.POLLHUP)
        result[item["key"]] = {"pid": pid, "ready": False}
    _reports(poller, pending, result, leave=0)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


def _pipes_at_once() -> int:
    """How many children may still owe their report (a pipe each) within this process's limit of
    open files, keeping 64 for the rest (a child's sockets, the interpreter's own)."""
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(1, soft - 64)


def _reports(poller, pending: dict[int, tuple[str, float]], result: dict[str, dict], leave: int) -> None:
    """Read the children's reports (``1``: listening; nothing: it died) until at most ``leave`` are
    owed. ``pending``: each child's pipe -> (key, when its report is due), oldest first; a child
    whose report is overdue counts as not ready and its pipe is closed, so a hung child costs its
    own wait once, not one more wait for every child forked after it."""
    import time
    while len(pending) > leave:
        oldest = next(iter(pending))
        left = pending[oldest][1] - time.monotonic()
        if left <= 0:
            poller.unregister(oldest)
            pending.pop(oldest)
            os.close(oldest)
            continue
        for r, _ev in poller.poll(left * 1000):
            if r in pending:
                poller.unregister(r)
                result[pending.pop(r)[0]]["ready"] = os.read(r, 1) == b"1"
                os.close(r)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--launch":
        sys.exit(launch(sys.argv[2]))
    sys.exit(main())
