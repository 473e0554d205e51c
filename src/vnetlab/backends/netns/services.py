"""Platform services run inside the lab's namespaces (stdlib only: started by the launcher of
:mod:`.responder`, which runs in isolated mode without site-packages).

Each answers from a table the plan computed with the engine; nothing here decides an Azure
question.

- ``dns_main(spec)``: a DNS server (UDP and TCP 53) answering A/AAAA/any query for a name of
  its table with the engine's answer: the CNAME chain then the A records, NXDOMAIN, or no
  answer at all (the engine's ``Timeout``). An entry ``{"forward": [IP...]}`` (or the table's
  default) really forwards the query to those servers from this namespace and relays their
  answer (a custom DNS VM forwarding to 168.63.129.16). Spec::

      {"bind": "168.63.129.16", "names": {"acct1.blob.core.windows.net":
           {"outcome": "NoError", "cnames": ["acct1.privatelink.blob.core.windows.net"],
            "addresses": ["10.0.2.5"]}, ...},
       "zones": {"corp.example": {"forward": ["10.2.0.4"]}},
       "default": {"outcome": "NXDOMAIN"}}

  (``bind``: one address or a list.)

- ``paas_main(spec)``: one PaaS resource (storage account, key vault: HTTPS on 443; SQL
  server: TDS on 1433) listening on its public address and on each private endpoint address,
  each in its own namespace (a socket stays in the namespace it was created in, so one
  process serves them all). Every connection is answered with the engine's admission for the
  address it arrived at and the source address it really sees. Spec::

      {"kind": "storage"|"keyvault"|"sql", "name": "acct1", "port": 443,
       "listen": [{"ns": "vl..-internet", "ip": "203.0.113.10"}, {"ns": "vl..-pe-x", "ip": "10.0.2.5"}],
       "admission": {"203.0.113.10": {"sources": {"198.51.100.4": {...}}, "default": {...}}},
       "cert": PATH, "key": PATH}

  where an admission is ``{"allowed": bool, "code": str, "http_status": int, "text": str}``. A web
  app's front end (``"kind": "webapp"``) has ``admission`` (main site) and ``scm_admission`` whose
  entries are the engine's cases by request header, ``[[{"x-azure-fdid": [...]}, admission], ...,
  [{}, admission]]``: it answers with the first whose headers the request carries.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLONE_NEWNET = 0x40000000

# -- DNS wire format ------------------------------------------------------------------------------
T_A, T_CNAME, T_AAAA = 1, 5, 28
RCODE = {"NoError": 0, "ServFail": 2, "NXDOMAIN": 3, "Refused": 5}
TTL = 10   # short: the lab changes under the clients


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_question(msg: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, qname, qtype, qclass, end of the question) of a query."""
    if len(msg) < 12:
        raise ValueError("short DNS message")
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd < 1:
        raise ValueError("no question")
    i, labels = 12, []
    while True:
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", msg[i:i + 4])
    return qid, flags, ".".join(labels), qtype, qclass, i + 4


def _rr(name: bytes, rtype: int, rdata: bytes) -> bytes:
    return name + struct.pack("!HHIH", rtype, 1, TTL, len(rdata)) + rdata


def build_answer(query: bytes, entry: dict, authoritative: bool = False) -> bytes | None:
    """The response to ``query`` from one table entry (None: no answer, as the engine's Timeout)."""
    qid, flags, qname, qtype, _qclass, qend = parse_question(query)
    outcome = entry.get("outcome", "NXDOMAIN")
    if outcome == "Timeout":
        return None
    rcode = RCODE.get(outcome, 2)
    answers: list[bytes] = []
    if rcode == 0:
        chain = [qname.rstrip(".").lower()] + [c.rstrip(".").lower() for c in entry.get("cnames", [])]
        chain = [c for i, c in enumerate(chain) if i == 0 or c != chain[i - 1]]
        owner = encode_name(qname)  # the question's spelling for the first owner
        for target in chain[1:]:
            tname = encode_name(target)
            answers.append(_rr(owner, T_CNAME, tname))
            owner = tname
        if qtype in (T_A, 255):
            answers += [_rr(owner, T_A, socket.inet_aton(a)) for a in entry.get("addresses", [])]
    rd = flags & 0x0100
    out_flags = 0x8000 | (0x0400 if authoritative else 0) | rd | 0x0080 | rcode
    header = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, 0)
    return header + query[12:qend] + b"".join(answers)


def error_answer(query: bytes, rcode: int) -> bytes:
    qid, flags, _n, _t, _c, qend = parse_question(query)
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x0100) | 0x0080 | rcode, 1, 0, 0, 0) + query[12:qend]


class DnsTable:
    """Names -> entries; ``zones``: suffix -> entry for the names of a zone not listed (the most
    specific suffix wins); ``default`` for the rest."""

    def __init__(self, spec: dict):
        self.names = {k.rstrip(".").lower(): v for k, v in spec.get("names", {}).items()}
        self.zones = sorted(((k.rstrip(".").lower(), v) for k, v in spec.get("zones", {}).items()),
                            key=lambda kv: -len(kv[0]))
        self.default = spec.get("default") or {"outcome": "NXDOMAIN"}
        # each alias of a chain answers the rest of it (a client following the CNAME asks
        # for it), unless the table has its own answer for that name
        for entry in list(self.names.values()):
            cnames = [c.rstrip(".").lower() for c in entry.get("cnames", [])]
            for i, alias in enumerate(cnames):
                self.names.setdefault(alias, {**entry, "cnames": cnames[i + 1:]})

    def entry(self, qname: str) -> dict:
        name = qname.rstrip(".").lower()
        if name in self.names:
            return self.names[name]
        return next((e for z, e in self.zones if name == z or name.endswith("." + z)), self.default)


def forward(query: bytes, servers: list[str], timeout: float = 2.0) -> bytes | None:
    """Really ask ``servers`` (in order, UDP) from this namespace; their answer, or None."""
    for server in servers:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(query, (server, 53))
                while True:
                    data, _ = s.recvfrom(65535)
                    if data[:2] == query[:2]:
                        return data
            except OSError:
                continue
    return None


def answer(table: DnsTable, query: bytes) -> bytes | None:
    try:
        _id, _f, qname, _qt, _qc, _end = parse_question(query)
    except (ValueError, IndexError, struct.error):
        return None
    entry = table.entry(qname)
    if entry.get("forward") is not None:
        if not entry["forward"]:
            return error_answer(query, RCODE["Refused"])
        return forward(query, entry["forward"])
    return build_answer(query, entry)


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _serve_udp(sock: socket.socket, table: DnsTable) -> None:
    while True:
        query, peer = sock.recvfrom(65535)
        threading.Thread(target=_udp_one, args=(sock, table, query, peer), daemon=True).start()


def _udp_one(sock: socket.socket, table: DnsTable, query: bytes, peer) -> None:
    resp = answer(table, query)
    _log(f"{peer[0]} udp {_qname(query)} -> {_summary(resp)}")
    if resp is not None:
        if len(resp) > 512:  # no EDNS here: the question only, truncated: the client retries over TCP
            qend = parse_question(resp)[5]
            flags = struct.unpack("!H", resp[2:4])[0] | 0x0200
            resp = resp[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + resp[12:qend]
        sock.sendto(resp, peer)


def _qname(query: bytes) -> str:
    try:
        return parse_question(query)[2]
    except (ValueError, IndexError, struct.error):
        return "?"


def _summary(resp: bytes | None) -> str:
    if resp is None:
        return "no answer"
    return f"rcode {resp[3] & 0x0F}, {struct.unpack('!H', resp[6:8])[0]} answers"


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _tcp_one(conn: socket.socket, peer, table: DnsTable) -> None:
    with conn:
        conn.settimeout(10)
        try:
            while True:
                (n,) = struct.unpack("!H", _recv_exact(conn, 2))
                query = _recv_exact(conn, n)
                resp = answer(table, query)
                _log(f"{peer[0]} tcp {_qname(query)} -> {_summary(resp)}")
                if resp is None:
                    return
                conn.sendall(struct.pack("!H", len(resp)) + resp)
        except (OSError, ConnectionError, struct.error):
            return


def _serve_tcp(sock: socket.socket, table: DnsTable) -> None:
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=_tcp_one, args=(conn, peer, table), daemon=True).start()


def dns_sockets(bind: str, port: int = 53) -> tuple[socket.socket, socket.socket]:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    u.bind((bind, port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((bind, port))
    t.listen(128)
    return u, t


def dns_main(spec: dict, ready) -> None:
    table = DnsTable(spec)
    binds = spec.get("bind", "0.0.0.0")
    for bind in [binds] if isinstance(binds, str) else binds:
        u, t = dns_sockets(bind, int(spec.get("port", 53)))
        threading.Thread(target=_serve_udp, args=(u, table), daemon=True).start()
        threading.Thread(target=_serve_tcp, args=(t, table), daemon=True).start()
    _log(f"dns on {binds} port 53: {len(table.names)} names, {len(table.zones)} zones, default {table.default}")
    ready()
    threading.Event().wait()


# -- PaaS admission ---------------------------------------------------------------------------------
def admission_for(table: dict, local_ip: str, peer_ip: str) -> dict:
    at = table.get(local_ip) or {}
    return (at.get("sources") or {}).get(peer_ip) or at.get("default") or {
        "allowed": False, "code": "Forbidden", "http_status": 403, "text": "This request is not authorized."}


_HEADERS_MODULE = []


def restriction_headers():
    """The engine's ``restriction_headers`` module (stdlib only), loaded from its file: this module
    runs isolated, without package imports, and the front end must decide a request's headers with
    the engine's own functions, not a copy of them."""
    if not _HEADERS_MODULE:
        import importlib.util
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "engine",
                            "restriction_headers.py")
        spec = importlib.util.spec_from_file_location("vnetlab_restriction_headers", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _HEADERS_MODULE.append(mod)
    return _HEADERS_MODULE[0]


def site_admission_for(table: dict, local_ip: str, peer_ip: str, headers) -> dict:
    """A web app's answer to a request: the engine's cases for the address and the caller (a list of
    ``[headers asked for, admission]``), the first whose headers the request carries."""
    at = table.get(local_ip) or {}
    cases = (at.get("sources") or {}).get(peer_ip) or at.get("default")
    if not cases:
        return {"allowed": False, "code": "IpForbidden", "http_status": 403, "reason": "Ip Forbidden", "text": ""}
    return restriction_headers().first_match(cases, headers)


# -- Storage and Key Vault (HTTPS) ---------------------------------------------------------------------
CONTAINERS = ('<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://{host}/">'
              "<Containers><Container><Name>data</Name><Properties><Last-Modified>{date}</Last-Modified>"
              "<Etag>\"0x8DC0000000000001\"</Etag><LeaseStatus>unlocked</LeaseStatus><LeaseState>available"
              "</LeaseState></Properties></Container></Containers><NextMarker /></EnumerationResults>")
STORAGE_ERROR = ('<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{text}\n'
                 "RequestId:{rid}\nTime:{time}</Message></Error>")


def _request_id() -> str:
    import uuid
    return str(uuid.uuid4())


WEB_ALLOWED = "<!DOCTYPE html><html><body><h1>{name}</h1><p>hello from the web app {name}</p></body></html>"
SERVER_VERSIONS = {"storage": "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0", "webapp": "Microsoft-IIS/10.0"}


def _http_handler(spec: dict):
    kind, name, table = spec["kind"], spec["name"], spec.get("admission", {})
    scm_table = spec.get("scm_admission", {})

    class H(BaseHTTPRequestHandler):
        server_version = SERVER_VERSIONS.get(kind, "vnetlab-kv")
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def address_string(self) -> str:  # never reverse-resolve
            return self.client_address[0]

        def version_string(self) -> str:
            return self.server_version

        def log_message(self, fmt: str, *args) -> None:
            _log(f"{self.client_address[0]} -> {self.connection.getsockname()[0]} {fmt % args}")

        def _send(self, status: int, body: str, ctype: str, headers: dict[str, str]) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _admission(self) -> dict:
            return admission_for(table, self.connection.getsockname()[0], self.client_address[0])

        def do_GET(self) -> None:  # noqa: N802
            if kind == "webapp":
                return self._site()
            adm = self._admission()
            rid = _request_id()
            if kind == "keyvault":
                return self._keyvault(adm, rid)
            host = (self.headers.get("Host") or name).split(":")[0]
            if adm.get("allowed"):
                return self._send(200, CONTAINERS.format(host=host, date=formatdate(usegmt=True)),
                                  "application/xml", {"x-ms-request-id": rid, "x-ms-version": "2021-08-06"})
            body = _body(adm, rid) or STORAGE_ERROR.format(
                code=adm.get("code", "AuthorizationFailure"), text=_xml(adm.get("text", "")), rid=rid,
                time=time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime()))
            return self._send(int(adm.get("http_status") or 403), body, "application/xml",
                              {"x-ms-error-code": adm.get("code", "AuthorizationFailure"), "x-ms-request-id": rid})

        do_HEAD = do_GET  # noqa: N815

        def _site(self) -> None:
            """A web app's front end: the main or scm site (by the Host header), as the engine admits
            this request with its headers; a refusal is 403 Ip Forbidden naming the caller (403 Site
            Disabled for a stopped app)."""
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            scm = host.endswith(".scm.azurewebsites.net") or host.endswith(".scm.privatelink.azurewebsites.net")
            adm = site_admission_for(scm_table if scm else table, self.connection.getsockname()[0],
                                     self.client_address[0], self.headers)
            if adm.get("allowed"):
                return self._send(200, WEB_ALLOWED.format(name=name), "text/html", {})
            data = (_body(adm, "") or adm.get("text", "")).encode()
            self.send_response(int(adm.get("http_status") or 403), adm.get("reason") or "Ip Forbidden")
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            if adm.get("code") == "IpForbidden":   # the refusal by the rules names the caller; a stopped app's does not
                self.send_header("x-ms-forbidden-ip", self.client_address[0])
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _keyvault(self, adm: dict, rid: str) -> None:
            seen = self.client_address[0]
            headers = {"x-ms-keyvault-network-info": f"addr={seen};act_addr_fam=InterNetwork;",
                       "x-ms-request-id": rid, "x-ms-keyvault-service-version": "1.9.0.0"}
            if self.path.split("?")[0].rstrip("/") == "/healthstatus":
                # what private-link diagnostics read: who the vault sees, whatever its firewall says
                return self._send(200, '{"status":"up"}', "application/json; charset=utf-8", headers)
            if adm.get("allowed"):
                return self._send(401, json.dumps({"error": {"code": "Unauthorized",
                                                             "message": "AKV10000: Request is missing a Bearer or PoP token."}}),
                                  "application/json; charset=utf-8", headers)
            inner = adm.get("code", "ForbiddenByFirewall")
            body = _body(adm, rid) or json.dumps({"error": {"code": "Forbidden", "message": adm.get("text", ""),
                                                            "innererror": {"code": inner}}})
            return self._send(int(adm.get("http_status") or 403), body, "application/json; charset=utf-8", headers)

    return H


def _body(adm: dict, rid: str) -> str | None:
    """The engine's error body for this refusal, with this answer's request id and time."""
    body = adm.get("body")
    if not body:
        return None
    return body.replace("@RID@", rid).replace("@TIME@", time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime()))


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, sock: socket.socket, handler, ctx: ssl.SSLContext | None):
        self.ctx = ctx
        socketserver.BaseServer.__init__(self, sock.getsockname(), handler)
        self.socket = sock
        self.server_name, self.server_port = sock.getsockname()[:2]

    def get_request(self):
        conn, addr = self.socket.accept()
        if self.ctx is not None:
            conn.settimeout(10)
            conn = self.ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def handle_error(self, request, client_address) -> None:
        _log(f"{client_address[0]}: {sys.exc_info()[1]!r}")


# -- SQL (TDS) --------------------------------------------------------------------------------------------
TDS_PRELOGIN, TDS_LOGIN7, TDS_REPLY, TDS_SQLBATCH, TDS_TXN = 0x12, 0x10, 0x04, 0x01, 0x0E
TDS_VERSION = 0x74000004   # 7.4


def _tds_packet(ptype: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHBB", ptype, 0x01, len(payload) + 8, 0, 1, 0) + payload


def _tds_read(conn: socket.socket) -> tuple[int, bytes]:
    """One TDS message (all its packets): (type, payload)."""
    payload, ptype = b"", 0
    while True:
        ptype, status, length, _spid, _pid, _win = struct.unpack("!BBHHBB", _recv_exact(conn, 8))
        payload += _recv_exact(conn, length - 8)
        if status & 0x01:
            return ptype, payload


def _us_varchar(s: str) -> bytes:
    return struct.pack("<H", len(s)) + s.encode("utf-16-le")


def _b_varchar(s: str) -> bytes:
    return bytes([len(s)]) + s.encode("utf-16-le")


def prelogin_reply() -> bytes:
    opts = [(0x00, bytes([12, 0, 0x07, 0xD0, 0, 0])),   # VERSION 12.0.2000
            (0x01, bytes([0x02])),                      # ENCRYPTION: ENCRYPT_NOT_SUP (the lab's TDS is plain)
            (0x02, b"\0"),                              # INSTOPT
            (0x03, b""),                                # THREADID
            (0x04, b"\0")]                              # MARS off
    head_len = 5 * len(opts) + 1
    head, data = b"", b""
    for tok, val in opts:
        head += struct.pack("!BHH", tok, head_len + len(data), len(val))
        data += val
    return head + b"\xff" + data


def tds_error(number: int, text: str, server: str, state: int = 1, klass: int = 14) -> bytes:
    body = struct.pack("<iBB", number, state, klass) + _us_varchar(text) + _b_varchar(server) + _b_varchar("") \
        + struct.pack("<i", 1)
    return b"\xaa" + struct.pack("<H", len(body)) + body


def tds_done(status: int = 0) -> bytes:
    return b"\xfd" + struct.pack("<HHQ", status, 0, 0)


def tds_loginack(server: str) -> bytes:
    body = b"\x01" + struct.pack(">I", TDS_VERSION) + _b_varchar("Microsoft SQL Server") + bytes([12, 0, 0x07, 0xD0])
    env_db = b"\x01" + _b_varchar("master") + _b_varchar("master")
    env_pkt = b"\x04" + _b_varchar("4096") + _b_varchar("4096")
    envs = b"".join(b"\xe3" + struct.pack("<H", len(e)) + e for e in (env_db, env_pkt))
    return b"\xad" + struct.pack("<H", len(body)) + body + envs


def login7_server_name(payload: bytes) -> str:
    """The ServerName a LOGIN7 carries (its offset and length in characters at bytes 52-55, UCS-2).
    https://learn.microsoft.com/openspecs/windows_protocols/ms-tds/773a62b6-ee89-4c02-9e5e-344882630aac"""
    try:
        offset, chars = struct.unpack("<HH", payload[52:56])
        return payload[offset:offset + 2 * chars].decode("utf-16-le")
    except (struct.error, UnicodeDecodeError):
        return ""


def _name_refusal(spec: dict, server_name: str) -> dict | None:
    """The gateway's refusal of a login naming a DNS name it does not take (the engine's list); a login
    by address or without a name is not checked here."""
    names = spec.get("server_names")
    name = server_name.rstrip(".").lower()
    if not names or not name or name in names["takes"]:
        return None
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        return names["refusal"]


def _sql_one(conn: socket.socket, peer, spec: dict) -> None:
    name, table = spec["name"], spec.get("admission", {})
    with conn:
        conn.settimeout(30)
        local = conn.getsockname()[0]
        try:
            while True:
                ptype, payload = _tds_read(conn)
                if ptype == TDS_PRELOGIN:
                    conn.sendall(_tds_packet(TDS_REPLY, prelogin_reply()))
                elif ptype == TDS_LOGIN7:
                    adm = _name_refusal(spec, login7_server_name(payload)) or admission_for(table, local, peer[0])
                    _log(f"{peer[0]} -> {local} login: {'allowed' if adm.get('allowed') else adm.get('code')}")
                    if adm.get("allowed"):
                        conn.sendall(_tds_packet(TDS_REPLY, tds_loginack(name) + tds_done()))
                        continue
                    try:
                        number = int(adm.get("code") or 18456)
                    except ValueError:
                        number = 18456
                    conn.sendall(_tds_packet(TDS_REPLY, tds_error(number, adm.get("text", ""), name)
                                             + tds_done(0x0002)))
                    return
                else:   # a batch or a transaction request after login: done, nothing returned
                    conn.sendall(_tds_packet(TDS_REPLY, tds_done()))
        except (OSError, ConnectionError, struct.error):
            return


def _serve_sql(sock: socket.socket, spec: dict) -> None:
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=_sql_one, args=(conn, peer, spec), daemon=True).start()


# -- Storage's file endpoint (SMB 2/3 on 445) ------------------------------------------------------
# Enough SMB2 for a client's NEGOTIATE and first SESSION_SETUP: the account refuses a source its
# firewall denies with STATUS_ACCESS_DENIED (what `mount -t cifs` reports as "Permission denied"),
# and asks an admitted one for credentials the lab does not model: STATUS_LOGON_FAILURE.
# https://learn.microsoft.com/openspecs/windows_protocols/ms-smb2/
SMB2_NEGOTIATE, SMB2_SESSION_SETUP = 0x0000, 0x0001
STATUS_ACCESS_DENIED, STATUS_LOGON_FAILURE, STATUS_NOT_SUPPORTED = 0xC0000022, 0xC000006D, 0xC00000BB
SMB_DIALECT = 0x0302   # SMB 3.0.2: no negotiate contexts; Azure Files takes SMB 3.x from anywhere


def _smb_read(conn: socket.socket) -> bytes:
    """One message of SMB's direct TCP transport (a zero byte, a 24-bit length, the message)."""
    head = _recv_exact(conn, 4)
    return _recv_exact(conn, int.from_bytes(head[1:], "big"))


def _smb_send(conn: socket.socket, msg: bytes) -> None:
    conn.sendall(b"\0" + len(msg).to_bytes(3, "big") + msg)


def smb2_reply_header(request: bytes, status: int) -> bytes:
    """The response header to ``request`` (same command, message id and session), with ``status``."""
    command, message_id, session = (struct.unpack_from("<H", request, 12)[0], struct.unpack_from("<Q", request, 24)[0],
                                    struct.unpack_from("<Q", request, 40)[0])
    return b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, status, command, 1, 0x1, 0, message_id, 0, 0,
                                     session) + b"\0" * 16


def smb2_negotiate_reply(request: bytes) -> bytes:
    body = struct.pack("<HHHH16sIIIIQQHHI", 65, 0x01, SMB_DIALECT, 0, b"vnetlab-storage\0", 0, 65536, 65536, 65536,
                       (int(time.time()) + 11644473600) * 10_000_000, 0, 128, 0, 0)
    return smb2_reply_header(request, 0) + body + b"\0"


def smb2_error(request: bytes, status: int) -> bytes:
    return smb2_reply_header(request, status) + struct.pack("<HBBI", 9, 0, 0, 0) + b"\0"


def _smb_one(conn: socket.socket, peer, table: dict) -> None:
    with conn:
        conn.settimeout(30)
        local = conn.getsockname()[0]
        try:
            while True:
                msg = _smb_read(conn)
                if msg[:4] != b"\xfeSMB":   # SMB1 or garbage: SMB2 only, as Azure Files
                    return
                command = struct.unpack_from("<H", msg, 12)[0]
                if command == SMB2_NEGOTIATE:
                    _smb_send(conn, smb2_negotiate_reply(msg))
                    continue
                if command != SMB2_SESSION_SETUP:
                    _smb_send(conn, smb2_error(msg, STATUS_NOT_SUPPORTED))
                    return
                adm = admission_for(table, local, peer[0])
                status = STATUS_LOGON_FAILURE if adm.get("allowed") else STATUS_ACCESS_DENIED
                _log(f"{peer[0]} -> {local} smb session setup: "
                     f"{'allowed, no credentials' if adm.get('allowed') else adm.get('code')}")
                _smb_send(conn, smb2_error(msg, status))   # the connection stays open, as a server's does
        except (OSError, ConnectionError, struct.error):
            return


def _serve_smb(sock: socket.socket, spec: dict) -> None:
    table = spec.get("admission", {})
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=_smb_one, args=(conn, peer, table), daemon=True).start()


# -- starting -------------------------------------------------------------------------------------------
def _setns(libc, ns: str) -> None:
    if not ns.startswith("vl") or "/" in ns:
        raise ValueError(f"bad namespace {ns!r}")
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            import ctypes
            e = ctypes.get_errno()
            raise OSError(e, f"setns {ns}: {os.strerror(e)}")
    finally:
        os.close(fd)


def listen_sockets(libc, listen: list[dict], port: int) -> list[socket.socket]:
    """One listening socket per (namespace, address): each created inside its namespace."""
    socks = []
    for item in listen:
        if libc is not None and item.get("ns"):
            _setns(libc, item["ns"])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((item["ip"], port))
        s.listen(256)
        socks.append(s)
    return socks


def paas_main(spec: dict, ready, libc=None) -> None:
    ports = spec.get("ports") or [{"port": 1433 if spec["kind"] == "sql" else 443, "tls": spec["kind"] != "sql"}]
    ctx = None
    if spec.get("cert") and any(p.get("tls") for p in ports):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(spec["cert"], spec["key"])
    handler = _http_handler(spec) if spec["kind"] != "sql" else None
    for p in ports:
        for s in listen_sockets(libc, spec["listen"], int(p["port"])):
            if spec["kind"] == "sql":
                threading.Thread(target=_serve_sql, args=(s, spec), daemon=True).start()
                continue
            if p.get("protocol") == "smb":
                threading.Thread(target=_serve_smb, args=(s, spec), daemon=True).start()
                continue
            srv = _TlsServer(s, handler, ctx if p.get("tls") else None)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
    _log(f"{spec['kind']} {spec['name']}: ports {[p['port'] for p in ports]} on "
         + ", ".join(f"{i['ip']} ({i.get('ns')})" for i in spec["listen"]))
    ready()
    threading.Event().wait()
