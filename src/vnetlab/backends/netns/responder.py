"""The built-in service run inside emulated VMs and web-app sandboxes (stdlib only).

VM mode: listen on TCP ports (HTTP: ``GET /`` -> ``200 hello from NAME``) and UDP ports
(echo every datagram back)::

    python -m vnetlab.backends.netns.responder --name rg1vm1 --tcp 80 --tcp 443 --udp 53

Web-app mode, like the field note's ``index.php``: ``GET /check?host=H&port=P`` tries a
TCP connect (2 s) from inside the sandbox and answers ``Connection OK`` or
``Connection NOK``; ``GET /`` answers a page naming the app::

    python -m vnetlab.backends.netns.responder --webapp contoso-app --port 80 \
        --backend 10.0.0.4:80          # default target of /check without parameters

No reverse DNS: ``http.server`` logs the client via ``address_string()``, which by default
may resolve names; it is overridden so nothing ever leaves the namespace for a resolver.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # many concurrent probes: a backlog of 5 drops SYNs

    def server_bind(self) -> None:  # skip HTTPServer's getfqdn() (a DNS lookup)
        import socketserver
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), port


def _handler(name: str, webapp: bool, backend: tuple[str, int] | None, check_timeout: float):
    class H(BaseHTTPRequestHandler):
        server_version = "vnetlab-responder"
        sys_version = ""

        def address_string(self) -> str:  # never reverse-resolve
            return self.client_address[0]

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write(f"{self.client_address[0]} {fmt % args}\n")

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
            if url.path == "/":
                if webapp:
                    return self._send(200, f"web app {name}\n")
                return self._send(200, f"hello from {name}\n")
            return self._send(404, "not found\n")

    return H


def _udp_echo(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data, addr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vnetlab-responder")
    ap.add_argument("--name", default="vm")
    ap.add_argument("--tcp", type=int, action="append", default=[])
    ap.add_argument("--udp", type=int, action="append", default=[])
    ap.add_argument("--webapp", metavar="NAME")
    ap.add_argument("--port", type=int, action="append", default=[])
    ap.add_argument("--backend", help="HOST:PORT for /check without parameters")
    ap.add_argument("--check-timeout", type=float, default=2.0)
    ap.add_argument("--bind", default="0.0.0.0")
    a = ap.parse_args(argv)
    webapp = a.webapp is not None
    name = a.webapp if webapp else a.name
    tcp_ports = a.tcp + a.port or ([80] if webapp else [])
    backend = None
    if a.backend:
        h, _, p = a.backend.rpartition(":")
        backend = (h, int(p))
    handler = _handler(name, webapp, backend, a.check_timeout)
    servers = [_Server((a.bind, p), handler) for p in tcp_ports]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    threads += [threading.Thread(target=_udp_echo, args=(p,), daemon=True) for p in a.udp]
    for t in threads:
        t.start()
    sys.stderr.write(f"responder {name}: tcp {tcp_ports} udp {a.udp}\n")
    sys.stderr.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
