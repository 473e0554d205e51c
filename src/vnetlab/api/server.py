"""Running the ARM endpoint: ``vnetlab serve`` (foreground) and a background thread for tests
and benchmarks."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn

from .app import create_app
from .tls import TlsFiles, ensure_tls


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn's server, but SIGTERM and Ctrl-C stop it at once even while clients hold idle
    keep-alive connections (the SDK and az do): closing a TLS connection politely waits for the
    client's close_notify, which an idle client never sends, so idle connections are aborted.
    A request still running gets ``timeout_graceful_shutdown`` seconds to finish."""

    async def shutdown(self, sockets=None) -> None:
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
        await super().shutdown(sockets)


def _config(app, tls: TlsFiles, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, ssl_certfile=str(tls.chain), ssl_keyfile=str(tls.key),
                          log_level=log_level, access_log=False, lifespan="off", timeout_keep_alive=30,
                          timeout_graceful_shutdown=1)


def serve(home: str | os.PathLike, host: str = "127.0.0.1", port: int = 8443, backend: str = "sim",
          require_token: str | None = None) -> None:
    """Serve the lab at ``home`` over HTTPS until interrupted."""
    home = Path(home)
    tls = ensure_tls(home)
    if not is_loopback(host):
        print(f"warning: binding to {host}, not loopback: anyone who can reach this address can change the lab"
              + ("" if require_token else " (no --require-token given)")
              + "; the certificate is only valid for 127.0.0.1 and localhost", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"vnetlab ARM endpoint: https://{shown}:{port}/  (backend {backend})")
    print(f"CA certificate: {tls.ca}  (SDK: connection_verify=...; az: REQUESTS_CA_BUNDLE=...)")
    app = create_app(home, require_token=require_token, backend=backend)
    _Server(_config(app, tls, host, port)).run()


class ServerThread:
    """The endpoint on 127.0.0.1 in a daemon thread, on a port the OS picks:

        with ServerThread(app, ensure_tls(home)) as url: ...
    """

    def __init__(self, app, tls: TlsFiles, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.url = f"https://{host}:{self.port}"
        self.server = _Server(_config(app, tls, host, self.port))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name=f"vnetlab-api-{self.port}")

    def start(self, timeout: float = 10.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the ARM endpoint did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # do not wait for clients' idle keep-alive connections
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
