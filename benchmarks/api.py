"""Benchmark and reliability check of the ARM endpoint (issue 4 section 6).

    .venv/bin/python benchmarks/api.py [--seconds 5] [--procs 2] [--threads 4] [--writers 50] [--updates 4]

Starts ``vnetlab serve`` in a subprocess on a free loopback port with a fresh lab, builds the
note's lab through ARM, then measures with concurrent keep-alive clients over TLS (client processes
times connections):

- GETs/s of a virtual network (goal 1,000/s);
- PUTs/s replacing route tables (goal 300/s);
- 50 writers doing GET + PUT with If-Match on one resource, retrying on 412: no update lost;
- malformed, wrongly typed, oversized and badly referenced bodies: every answer a 4xx with an
  ARM error, none a 500, and the lab unchanged.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
RG = f"{SUB}/resourceGroups/rg1"
NET = f"{RG}/providers/Microsoft.Network"
V = "?api-version=2024-07-01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int) -> subprocess.Popen:
    code = f"from vnetlab.api.server import serve; serve({str(home)!r}, port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ca = home / "tls" / "ca.pem"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()}")
        try:
            if ca.exists() and httpx.get(f"https://127.0.0.1:{port}/metadata/endpoints",
                                         verify=ssl.create_default_context(cafile=str(ca))).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def build(client: httpx.Client) -> None:
    def put(path: str, body: dict) -> None:
        r = client.put(path + V, json=body)
        assert r.status_code in (200, 201), (path, r.status_code, r.text)

    put(f"{SUB}/resourcegroups/rg1", {"location": "westeurope"})
    put(f"{NET}/virtualNetworks/vnet1", {"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/24"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/26"}},
                    {"name": "integration", "properties": {"addressPrefix": "10.0.0.128/26", "delegations": [
                        {"name": "d", "properties": {"serviceName": "Microsoft.Web/serverFarms"}}]}}]}})
    put(f"{NET}/networkSecurityGroups/nsg-vm", {"location": "westeurope", "properties": {"securityRules": [
        {"name": "deny-https", "properties": {"priority": 100, "direction": "Inbound", "access": "Deny",
                                              "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
                                              "destinationAddressPrefix": "10.0.0.4",
                                              "destinationPortRange": "443"}}]}})
    put(f"{NET}/routeTables/counter", {"location": "westeurope", "tags": {"n": "0"}})


def route_table(i: int) -> dict:
    return {"location": "westeurope", "properties": {"routes": [
        {"name": "r", "properties": {"addressPrefix": f"192.168.{i % 250}.0/24", "nextHopType": "None"}}]}}


class Conn:
    """A keep-alive HTTPS connection with the stdlib client: cheap enough that the server, not the
    client, is what is measured (httpx's async pool tops out near 200 requests/s here)."""

    def __init__(self, port: int, cafile: str):
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=cafile),
                                                timeout=60)

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Authorization": "Bearer bench", "Content-Type": "application/json", **(headers or {})}
        self.conn.request(method, path, body=data, headers=hdrs)
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def _load(port: int, cafile: str, kind: str, seconds: float, worker: str, out) -> None:
    conn, n, errors, i = Conn(port, cafile), 0, 0, 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if kind == "GET":
            status, _ = conn.request("GET", f"{NET}/virtualNetworks/vnet1{V}")
        else:
            status, _ = conn.request("PUT", f"{NET}/routeTables/rt-{worker}{V}", route_table(i))
        i, n, errors = i + 1, n + 1, errors + (status >= 400)
    out.put((n, errors))


def _process(port: int, cafile: str, kind: str, seconds: float, threads: int, proc: int, out) -> None:
    workers = [threading.Thread(target=_load, args=(port, cafile, kind, seconds, f"{proc}-{t}", out))
               for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def throughput(port: int, cafile: str, kind: str, seconds: float, procs: int, threads: int) -> dict:
    out = mp.Queue()
    ps = [mp.Process(target=_process, args=(port, cafile, kind, seconds, threads, p, out)) for p in range(procs)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    results = [out.get() for _ in range(procs * threads)]
    for p in ps:
        p.join()
    elapsed = max(time.monotonic() - t0, seconds)
    n = sum(r[0] for r in results)
    return {"requests": n, "per_second": round(n / elapsed), "errors": sum(r[1] for r in results),
            "clients": procs * threads}


def if_match_writers(port: int, cafile: str, writers: int, updates: int) -> dict:
    """Each writer adds 1 to the counter table's tag `updates` times: GET, then PUT with If-Match,
    again on 412. With every update serialized against the ETag, none may be lost."""
    url = f"{NET}/routeTables/counter{V}"
    retries, failures = [0], []

    def writer() -> None:
        conn = Conn(port, cafile)
        for _ in range(updates):
            while True:
                _, raw = conn.request("GET", url)
                cur = json.loads(raw)
                body = {"location": cur["location"], "tags": {"n": str(int(cur["tags"]["n"]) + 1)}}
                status, raw = conn.request("PUT", url, body, {"If-Match": cur["etag"]})
                if status == 200:
                    break
                if status != 412:
                    failures.append((status, raw[:200]))
                    return
                retries[0] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = int(json.loads(Conn(port, cafile).request("GET", url)[1])["tags"]["n"])
    return {"writers": writers, "updates_each": updates, "expected": writers * updates, "final": final,
            "lost": writers * updates - final, "412_retries": retries[0], "other_failures": failures,
            "seconds": round(time.monotonic() - t0, 2)}


def bad_requests(client: httpx.Client, home: Path) -> dict:
    from vnetlab.store import Store
    store = Store.open(home)
    before = store.version()
    vnet = f"{NET}/virtualNetworks/vnet1{V}"
    subnet = f"{NET}/virtualNetworks/vnet1/subnets/s9{V}"
    cases = {
        "malformed JSON": ("PUT", vnet, b'{"location": "westeurope", '),
        "not an object": ("PUT", vnet, b"[1, 2, 3]"),
        "unknown top-level key": ("PUT", vnet, json.dumps({"location": "westeurope", "address_space": {}}).encode()),
        "wrong type (location)": ("PUT", vnet, b'{"location": 42}'),
        "wrong type (addressPrefixes)": ("PUT", vnet, json.dumps(
            {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": "10.0.0.0/24"}}}).encode()),
        "wrong type (priority)": ("PUT", f"{NET}/networkSecurityGroups/nsg-vm/securityRules/r9{V}", json.dumps(
            {"properties": {"priority": "high", "direction": "Inbound", "access": "Allow",
                            "protocol": "Tcp"}}).encode()),
        "not a CIDR": ("PUT", subnet, b'{"properties": {"addressPrefix": "10.0.0.999/24"}}'),
        "bad id": ("PUT", subnet, json.dumps({"properties": {"addressPrefix": "10.0.0.64/28",
                                                             "networkSecurityGroup": {"id": "nsg-vm"}}}).encode()),
        "id of a missing resource": ("PUT", subnet, json.dumps({"properties": {"addressPrefix": "10.0.0.64/28",
                                     "routeTable": {"id": f"{NET}/routeTables/nope"}}}).encode()),
        "oversized body": ("PUT", vnet, b'{"tags": {"a": "' + b"x" * (5 * 1024 * 1024) + b'"}}'),
        "null body": ("PUT", vnet, b"null"),
        "unknown resource group": ("PUT", f"{SUB}/resourceGroups/nope/providers/Microsoft.Network/"
                                   f"virtualNetworks/v{V}", b'{"location": "westeurope"}'),
        "bad resource name": ("PUT", f"{NET}/virtualNetworks/bad%20name{V}", b'{"location": "westeurope"}'),
    }
    out = {}
    for name, (method, path, body) in cases.items():
        r = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        try:
            code = r.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        out[name] = {"status": r.status_code, "code": code}
    after = store.version()
    bad = {k: v for k, v in out.items() if not 400 <= v["status"] < 500 or not v["code"]}
    return {"cases": out, "all_4xx_with_code": not bad, "lab_unchanged": before == after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--threads", type=int, default=4, help="connections per client process")
    ap.add_argument("--writers", type=int, default=50)
    ap.add_argument("--updates", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vnetlab-bench-") as tmp:
        home, port = Path(tmp) / "lab", free_port()
        proc = start_server(home, port)
        try:
            cafile = str(home / "tls" / "ca.pem")
            with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=cafile),
                              timeout=60) as client:
                build(client)
                report = {"throughput": {kind: throughput(port, cafile, kind, args.seconds, args.procs, args.threads)
                                         for kind in ("GET", "PUT")},
                          "if_match": if_match_writers(port, cafile, args.writers, args.updates),
                          "bad_requests": bad_requests(client, home)}
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    report["goals"] = {"GET >= 1000/s": report["throughput"]["GET"]["per_second"] >= 1000,
                       "PUT >= 300/s": report["throughput"]["PUT"]["per_second"] >= 300,
                       "no lost update": report["if_match"]["lost"] == 0 and not report["if_match"]["other_failures"],
                       "bad input: 4xx, no change": report["bad_requests"]["all_4xx_with_code"]
                       and report["bad_requests"]["lab_unchanged"]}
    print(json.dumps(report, indent=2))
    sys.exit(0 if all(report["goals"].values()) else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
