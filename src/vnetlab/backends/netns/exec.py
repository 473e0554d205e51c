"""Run things inside emulated hosts and report what a real client sees.

- ``run_in(ns, argv)``: ``ip netns exec NS ARGV`` (so ``route -n``, ``curl``, ``ping`` run
  exactly as on the host they emulate, with that namespace's resolv.conf).
- ``capture(ns, filter, count)``: ``tcpdump -nn -l`` started and *listening* before it
  returns (it waits for tcpdump's "listening on" line), so traffic sent afterwards is seen.
- probes: ``probe_tcp``/``probe_udp``/``probe_icmp`` return one of the verdicts of the
  trace vocabulary, derived from what the socket API really reported:

  ============  ===============================================================
  Connected     TCP handshake completed / UDP reply / ICMP echo reply
  Refused       TCP RST (ECONNREFUSED) / ICMP port unreachable for UDP
  TimedOut      nothing came back within the timeout (silently dropped)
  Unreachable   ENETUNREACH/EHOSTUNREACH (no route, or ICMP unreachable)
  ============  ===============================================================

- ``probe_many(ns, flows)``: many probes in ONE python process inside the namespace,
  concurrently (threads). Starting a process per probe costs ~20-40 ms; a 200-flow
  differential test would spend seconds just forking.

The probe program is run with this interpreter (``sys.executable``) and only the stdlib.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

from .errors import ProbeError
from .kernel import ns_exec_argv

CONNECTED, REFUSED, TIMED_OUT, UNREACHABLE = "Connected", "Refused", "TimedOut", "Unreachable"


def run_in(ns: str, argv: list[str], timeout: float | None = None, capture: bool = True,
           input: str | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``argv`` in namespace ``ns``; text stdout/stderr captured unless ``capture=False``."""
    return subprocess.run(ns_exec_argv(ns, argv), capture_output=capture, text=True,
                          timeout=timeout, input=input, check=check)


@dataclass
class Capture:
    """A running tcpdump. ``lines()`` waits for it to finish (count reached or timeout)."""

    proc: subprocess.Popen
    write: str | None = None
    _out: list[str] = field(default_factory=list)
    _err: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def lines(self, timeout: float = 5.0) -> list[str]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        for t in self._threads:
            t.join(timeout=2)
        return list(self._out)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # our own child, by its Popen handle
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def capture(ns: str, filter_expr: str, count: int, write: str | None = None,
            iface: str = "any", ready_timeout: float = 5.0) -> Capture:
    """Start ``tcpdump -nn -l -i IFACE -c COUNT FILTER`` in ``ns``; returns once listening.
    With ``write`` the packets are also saved as pcap (``--print`` keeps the text)."""
    argv = ["tcpdump", "-nn", "-l", "-i", iface, "-c", str(count), "-Z", "root"]
    if write:
        argv += ["-w", write, "--print"]
    argv += filter_expr.split() if filter_expr else []
    proc = subprocess.Popen(ns_exec_argv(ns, argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
    cap = Capture(proc, write)
    ready = threading.Event()

    def pump_out() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            cap._out.append(line.rstrip("\n"))

    def pump_err() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            cap._err.append(line)
            if "listening on" in line:
                ready.set()
        ready.set()

    for fn in (pump_out, pump_err):
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        cap._threads.append(t)
    if not ready.wait(ready_timeout) or proc.poll() not in (None, 0):
        cap.stop()
        raise ProbeError(f"tcpdump did not start in {ns}: {cap.stderr.strip()}")
    time.sleep(0.05)  # the socket is bound when "listening" is printed; a little margin
    return cap


# The probe program: reads [[proto, dst, port], ...] and a timeout on stdin, prints a JSON
# list of verdicts. Runs inside the namespace. Stdlib only.
_PROBE_SRC = r'''
import errno, json, os, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
req = json.loads(sys.stdin.read()); T = float(req["timeout"])
UNR = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN)
def tcp(dst, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(T)
    try:
        s.connect((dst, int(port))); return "Connected"
    except ConnectionRefusedError: return "Refused"
    except (socket.timeout, TimeoutError): return "TimedOut"
    except OSError as e: return "Unreachable" if e.errno in UNR else "TimedOut"
    finally: s.close()
def udp(dst, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(T)
    try:
        s.connect((dst, int(port))); s.send(b"vnetlab-probe")
        s.recv(65535); return "Connected"
    except ConnectionRefusedError: return "Refused"
    except (socket.timeout, TimeoutError): return "TimedOut"
    except OSError as e: return "Unreachable" if e.errno in UNR else "TimedOut"
    finally: s.close()
def icmp(dst, port=None):
    w = max(1, int(round(T)))
    p = subprocess.run(["ping", "-n", "-c", "1", "-W", str(w), dst], capture_output=True, text=True)
    out = p.stdout + p.stderr
    if p.returncode == 0: return "Connected"
    if "unreachable" in out.lower(): return "Unreachable"
    return "TimedOut"
F = {"tcp": tcp, "udp": udp, "icmp": icmp}
flows = req["flows"]
with ThreadPoolExecutor(max_workers=max(1, min(len(flows), 128))) as ex:
    res = list(ex.map(lambda f: F[f[0].lower()](f[1], f[2]), flows))
print(json.dumps(res))
'''


def probe_many(ns: str, flows: Iterable[tuple[str, str, int | None]],
               timeout: float = 1.0) -> list[str]:
    """Run all ``(proto, dst, port)`` probes concurrently in one process inside ``ns``;
    returns verdicts in the same order. ``proto`` is ``tcp``, ``udp`` or ``icmp``."""
    flows = [[p, d, port] for p, d, port in flows]
    if not flows:
        return []
    for f in flows:
        if f[0].lower() not in ("tcp", "udp", "icmp"):
            raise ValueError(f"unknown protocol {f[0]!r}")
    waves = (len(flows) + 127) // 128
    p = run_in(ns, [sys.executable, "-c", _PROBE_SRC],
               input=json.dumps({"timeout": timeout, "flows": flows}),
               timeout=waves * (timeout + 2) + 10)
    if p.returncode != 0:
        raise ProbeError(f"probe in {ns} failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def probe_tcp(ns: str, dst: str, port: int, timeout: float = 1.0) -> str:
    return probe_many(ns, [("tcp", dst, port)], timeout)[0]


def probe_udp(ns: str, dst: str, port: int, timeout: float = 1.0) -> str:
    return probe_many(ns, [("udp", dst, port)], timeout)[0]


def probe_icmp(ns: str, dst: str, timeout: float = 1.0) -> str:
    """``ping -c 1 -W``: reply -> Connected; "Network is unreachable" or an ICMP
    unreachable -> Unreachable; nothing -> TimedOut."""
    p = run_in(ns, ["ping", "-n", "-c", "1", "-W", str(max(1, int(round(timeout)))), dst],
               timeout=timeout + 5)
    if p.returncode == 0:
        return CONNECTED
    if "unreachable" in (p.stdout + p.stderr).lower():
        return UNREACHABLE
    return TIMED_OUT


# -- a PaaS service's own answer -----------------------------------------------------------------
_SERVICE_SRC = r'''
import json, socket, ssl, struct, sys
a = json.loads(sys.stdin.read())

def http(tls):
    s = socket.create_connection((a["dst"], a["port"]), timeout=a["timeout"])
    if tls:
        ctx = ssl.create_default_context(cafile=a["ca"]) if a.get("ca") else ssl._create_unverified_context()
        s = ctx.wrap_socket(s, server_hostname=a["host"])
    extra = "".join("%s: %s\r\n" % (k, v) for k, v in (a.get("headers") or {}).items())
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" % (a["path"], a["host"], extra)).encode())
    data = b""
    while True:  # Connection: close
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    code = headers.get("x-ms-error-code", "")
    if not code and lines[0].split()[1] == "403" and headers.get("content-type", "").startswith("text/html"):
        code = lines[0].split(" ", 2)[-1].replace(" ", "")  # a web app's front end: "403 Ip Forbidden", "403 Site Disabled"
    if not code and headers.get("content-type", "").startswith("application/json"):
        try:  # a key vault's error: {"error": {"code", "message", "innererror": {"code"}}}
            err = json.loads(body).get("error") or {}
            code = (err.get("innererror") or {}).get("code") or err.get("code") or ""
        except ValueError:
            pass
    return {"status": int(lines[0].split()[1]), "code": code}

def packet(kind, payload):
    return struct.pack("!BBHHBB", kind, 1, len(payload) + 8, 0, 1, 0) + payload

def message(s):
    out = b""
    while True:
        head = b""
        while len(head) < 8:
            chunk = s.recv(8 - len(head))
            if not chunk:
                raise ConnectionError("closed")
            head += chunk
        status, length = head[1], struct.unpack("!H", head[2:4])[0]
        body = b""
        while len(body) < length - 8:
            chunk = s.recv(length - 8 - len(body))
            if not chunk:
                raise ConnectionError("closed")
            body += chunk
        out += body
        if status & 1:
            return out

def login7(server):
    """A LOGIN7 whose only field is ServerName (the name the client connects to, as drivers send it);
    every other field empty, pointing at the end of the fixed part (94 bytes)."""
    name = server.encode("utf-16-le")
    fixed = bytearray(struct.pack("<I", 94 + len(name)) + b"\0" * 90)
    for at in [*range(36, 72, 4), 78, 82, 86]:   # ib of each variable field (ClientID sits at 72-77)
        struct.pack_into("<H", fixed, at, 94)
    struct.pack_into("<HH", fixed, 52, 94, len(server))
    return bytes(fixed) + name

def tds():
    s = socket.create_connection((a["dst"], a["port"]), timeout=a["timeout"])
    s.sendall(packet(0x12, bytes([0, 0, 11, 0, 6, 1, 0, 17, 0, 1, 255, 12, 0, 0, 0, 0, 0, 2])))
    message(s)
    s.sendall(packet(0x10, login7(a["host"])))
    reply = message(s)
    if reply[:1] == b"\xad":
        return {"login": True}
    if reply[:1] == b"\xaa":
        return {"login": False, "number": struct.unpack("<i", reply[3:7])[0]}
    return {"login": False, "number": None}

def smb_header(command, message_id):
    return b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, command, 1, 0, 0, message_id, 0, 0, 0) + b"\0" * 16

def smb_exchange(s, msg):
    s.sendall(b"\0" + len(msg).to_bytes(3, "big") + msg)
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    n, reply = int.from_bytes(head[1:], "big"), b""
    while len(reply) < n:
        chunk = s.recv(n - len(reply))
        if not chunk:
            raise ConnectionError("closed")
        reply += chunk
    return struct.unpack_from("<I", reply, 8)[0]

def smb():
    """SMB2 NEGOTIATE (2.0.2 to 3.0.2), then a SESSION_SETUP without a token: its status."""
    s = socket.create_connection((a["dst"], a["port"]), timeout=a["timeout"])
    dialects = [0x0202, 0x0210, 0x0300, 0x0302]
    negotiate = struct.pack("<HHHHI16sQ", 36, len(dialects), 1, 0, 0, b"vnetlab-probe\0\0\0", 0) \
        + struct.pack("<%dH" % len(dialects), *dialects)
    if smb_exchange(s, smb_header(0, 0) + negotiate) != 0:
        return {"smb_status": "negotiate refused"}
    status = smb_exchange(s, smb_header(1, 1) + struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 88, 0, 0) + b"\0")
    return {"smb_status": status}

try:
    print(json.dumps(tds() if a["kind"] == "sql" else smb() if a["kind"] == "smb" else http(a["port"] != 80)))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
'''


def probe_service(ns: str, kind: str, dst: str, port: int, host: str, ca: str | None = None,
                  timeout: float = 2.0, headers: dict[str, str] | None = None) -> dict:
    """Ask a PaaS endpoint for real from inside ``ns``, as its clients do: storage ``GET /`` and a
    key vault ``GET /secrets`` over HTTPS (HTTP on 80) with ``host`` as the TLS name and Host
    header, a SQL server a TDS prelogin and login, a storage account's file endpoint (445) an SMB2
    negotiate and session setup; ``headers``: more HTTP request headers (a web app's rules). Returns ``{"status", "code"}`` (HTTP), ``{"login", "number"}``
    (TDS), ``{"smb_status"}`` (SMB) or ``{"error"}``."""
    path = "/secrets?api-version=7.4" if kind == "key_vaults" else "/"
    args = {"kind": "sql" if kind == "sql_servers" else "smb" if port == 445 else "http", "dst": dst, "port": port, "host": host,
            "ca": ca, "path": path, "timeout": timeout, "headers": headers or {}}
    p = run_in(ns, [sys.executable, "-I", "-c", _SERVICE_SRC], input=json.dumps(args), timeout=timeout * 3 + 10)
    if p.returncode != 0:
        raise ProbeError(f"service probe in {ns} failed: {p.stderr.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])
