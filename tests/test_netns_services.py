"""The platform services the emulation runs (``backends/netns/services.py``), each started as the
backend starts it (the responder script, isolated mode) in a namespace of its own, and asked by
real clients: ``dig``/``nslookup``/``getent`` (DNS), ``curl`` with the lab's CA (storage, key
vault) and python-tds (SQL). Their tables are written here; the lab tests (test_netns_dns.py,
test_netns_paas.py) feed them from the engine."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from vnetlab.api.tls import issue_cert, tls_files
from vnetlab.backends.netns import exec as nx
from vnetlab.backends.netns import kernel
from vnetlab.backends.netns.processes import responder_argv
from netns_support import NETNS_MARKS, TDS_CLIENT  # noqa: E402

pytestmark = NETNS_MARKS

DENIED = {"allowed": False, "code": "AuthorizationFailure", "http_status": 403,
          "text": "This request is not authorized to perform this operation."}


@pytest.fixture
def ns():
    """A namespace with lo up and two local addresses (servers and clients at once)."""
    name = f"vlsvc{uuid.uuid4().hex[:8]}"
    kernel.netns_add([name])
    procs: list[subprocess.Popen] = []
    try:
        kernel.ip_batch(name, ["link set dev lo up", "addr add 10.9.0.1/32 dev lo", "addr add 10.9.0.2/32 dev lo"])
        yield name, procs
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        kernel.netns_del(name)


def start(ns_procs, mode: str, spec: dict, port: int, host: str = "10.9.0.1") -> None:
    name, procs = ns_procs
    argv = kernel.ns_exec_argv(name, responder_argv(mode, json.dumps(spec)))
    procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if nx.probe_tcp(name, host, port, 0.5) == "Connected":
            return
        time.sleep(0.05)
    raise AssertionError(f"{mode} not listening on {host}:{port}")


DNS_TABLE = {"bind": "10.9.0.1", "names": {
    "acct1.blob.core.windows.net": {"outcome": "NoError", "cnames": ["acct1.privatelink.blob.core.windows.net"],
                                    "addresses": ["10.0.2.5"]},
    "silent.example": {"outcome": "Timeout"},
    "fwd.example": {"forward": ["10.9.0.2"]}},
    "default": {"outcome": "NXDOMAIN"}}


def test_dns_answers_its_table(ns):
    start(ns, "--dns", DNS_TABLE, 53)
    name = ns[0]
    out = nx.run_in(name, ["dig", "@10.9.0.1", "+noall", "+answer", "+comments", "acct1.blob.core.windows.net"]).stdout
    assert "status: NOERROR" in out
    assert re.search(r"acct1\.blob\.core\.windows\.net\.\s+\d+\s+IN\s+CNAME\s+acct1\.privatelink\.blob\.core"
                     r"\.windows\.net\.", out)
    assert re.search(r"acct1\.privatelink\.blob\.core\.windows\.net\.\s+\d+\s+IN\s+A\s+10\.0\.2\.5", out)
    # the alias answers the rest of the chain (nslookup follows it for AAAA)
    ns_out = nx.run_in(name, ["nslookup", "acct1.blob.core.windows.net", "10.9.0.1"]).stdout
    assert "canonical name = acct1.privatelink.blob.core.windows.net." in ns_out
    assert re.search(r"^Address: 10\.0\.2\.5$", ns_out, re.M)
    assert "NXDOMAIN" not in ns_out
    tcp = nx.run_in(name, ["dig", "@10.9.0.1", "+tcp", "+short", "acct1.blob.core.windows.net"]).stdout.split()
    assert tcp == ["acct1.privatelink.blob.core.windows.net.", "10.0.2.5"]
    assert "status: NXDOMAIN" in nx.run_in(name, ["dig", "@10.9.0.1", "nothing.example"]).stdout
    silent = nx.run_in(name, ["dig", "@10.9.0.1", "+time=1", "+tries=1", "silent.example"])
    assert silent.returncode == 9 and "timed out" in silent.stdout


def test_dns_really_forwards(ns):
    start(ns, "--dns", DNS_TABLE, 53)
    upstream = {"bind": "10.9.0.2", "names": {"fwd.example": {"outcome": "NoError", "addresses": ["10.7.7.7"]}}}
    start(ns, "--dns", upstream, 53, host="10.9.0.2")
    out = nx.run_in(ns[0], ["dig", "@10.9.0.1", "+short", "fwd.example"]).stdout.split()
    assert out == ["10.7.7.7"]


def test_getent_uses_the_namespace_resolv_conf(ns):
    start(ns, "--dns", DNS_TABLE, 53)
    kernel.write_resolv_conf(ns[0], "nameserver 10.9.0.1\noptions timeout:1 attempts:1\n")
    try:
        got = nx.run_in(ns[0], ["getent", "hosts", "acct1.blob.core.windows.net"])
        assert got.returncode == 0
        assert got.stdout.split()[0] == "10.0.2.5"
        assert nx.run_in(ns[0], ["getent", "hosts", "nothing.example"]).returncode == 2
    finally:
        kernel.remove_etc_netns(ns[0])


@pytest.fixture
def certs(tmp_path):
    chain, key = tmp_path / "tls" / "svc.pem", tmp_path / "tls" / "svc.key"
    names = ["acct1.blob.core.windows.net", "kv1.vault.azure.net"]
    assert issue_cert(tmp_path, names, chain, key) is True
    assert issue_cert(tmp_path, names, chain, key) is False   # same names: kept
    return tls_files(tmp_path).ca, chain, key


def curl(ns: str, ca, host: str, ip: str, path: str = "/", source: str | None = None) -> tuple[int, dict, str]:
    via = ["--interface", source] if source else []
    out = nx.run_in(ns, ["curl", "-s", "-i", "--max-time", "5", "--cacert", str(ca), *via, "--resolve",
                         f"{host}:443:{ip}", f"https://{host}{path}"]).stdout
    head, _, body = out.partition("\n\n")   # text mode: CRLF read as LF
    lines = head.split("\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_storage_answers_each_address_and_source_as_its_table_says(ns, certs):
    ca, chain, key = certs
    spec = {"kind": "storage", "name": "acct1", "listen": [{"ip": "10.9.0.1"}, {"ip": "10.9.0.2"}],
            "ports": [{"port": 443, "tls": True}], "cert": str(chain), "key": str(key),
            "admission": {"10.9.0.1": {"default": {"allowed": True}},
                          "10.9.0.2": {"sources": {"10.9.0.1": {"allowed": True}}, "default": DENIED}}}
    start(ns, "--paas", spec, 443)
    status, _, body = curl(ns[0], ca, "acct1.blob.core.windows.net", "10.9.0.1", "/?comp=list")
    assert status == 200 and "<Name>data</Name>" in body
    # at 10.9.0.2: the source 10.9.0.1 is admitted, any other source gets the default (403)
    assert curl(ns[0], ca, "acct1.blob.core.windows.net", "10.9.0.2", source="10.9.0.1")[0] == 200
    status, headers, body = curl(ns[0], ca, "acct1.blob.core.windows.net", "10.9.0.2", source="10.9.0.2")
    assert status == 403 and headers["x-ms-error-code"] == "AuthorizationFailure"
    assert "<Code>AuthorizationFailure</Code><Message>This request is not authorized" in body


def test_key_vault_echoes_the_source_it_sees(ns, certs):
    ca, chain, key = certs
    refused = {"allowed": False, "code": "ForbiddenByFirewall", "http_status": 403, "text": "Client address is not "
               "authorized and caller is not a trusted service.",
               "body": '{"error": {"code": "Forbidden", "message": "x @RID@", "innererror": {"code": "ForbiddenByFirewall"}}}'}
    spec = {"kind": "keyvault", "name": "kv1", "listen": [{"ip": "10.9.0.1"}], "ports": [{"port": 443, "tls": True}],
            "cert": str(chain), "key": str(key), "admission": {"10.9.0.1": {"default": refused}}}
    start(ns, "--paas", spec, 443)
    status, headers, _ = curl(ns[0], ca, "kv1.vault.azure.net", "10.9.0.1", "/healthstatus", source="10.9.0.2")
    assert status == 200
    assert headers["x-ms-keyvault-network-info"] == "addr=10.9.0.2;act_addr_fam=InterNetwork;"
    status, headers, body = curl(ns[0], ca, "kv1.vault.azure.net", "10.9.0.1", "/secrets?api-version=7.4")
    assert status == 403
    err = json.loads(body)["error"]
    assert err["innererror"]["code"] == "ForbiddenByFirewall"
    assert err["message"] == f"x {headers['x-ms-request-id']}"




def test_sql_speaks_tds_to_a_real_client(ns):
    pytest.importorskip("pytds")
    text = "Reason: An instance-specific error occurred while establishing a connection to SQL Server."
    spec = {"kind": "sql", "name": "sql1", "listen": [{"ip": "10.9.0.1"}, {"ip": "10.9.0.2"}],
            "ports": [{"port": 1433, "tls": False}],
            "admission": {"10.9.0.1": {"default": {"allowed": False, "code": "47073", "text": text}},
                          "10.9.0.2": {"default": {"allowed": True}}}}
    start(ns, "--paas", spec, 1433)

    def login(ip: str) -> dict:
        out = nx.run_in(ns[0], [sys.executable, "-c", TDS_CLIENT, ip], timeout=60).stdout
        return json.loads(out.strip().splitlines()[-1])

    assert login("10.9.0.1") == {"login": False, "number": 47073, "text": text}
    assert login("10.9.0.2") == {"login": True}


def test_a_zombie_never_matches_its_record():
    """``pid_matches`` reads only the command line: an exited process not yet reaped by its parent
    (a zombie, not ours to reap) must not match the record of what it ran; a live one must."""
    from vnetlab.backends.netns.processes import pid_matches
    argv = ["/bin/sleep", "31"]
    parent = subprocess.Popen(["/bin/sh", "-c", "/bin/true & exec /bin/sleep 30"])   # sleep never reaps true
    live = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 5
        zombie = None
        while zombie is None:
            assert time.monotonic() < deadline
            kids = open(f"/proc/{parent.pid}/task/{parent.pid}/children").read().split()
            for k in kids:
                with open(f"/proc/{k}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        zombie = int(k)
            time.sleep(0.01)
        assert pid_matches(live.pid, "vl-x", argv)
        assert not pid_matches(zombie, "vl-x", ["/bin/true"])
    finally:
        for p in (parent, live):
            p.kill()
            p.wait()
