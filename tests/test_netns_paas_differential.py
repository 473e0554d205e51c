"""Differential test for PaaS by name: generated labs (random service firewalls, private endpoints
and their connection states, private DNS zones and their links, service endpoints, a custom DNS
server that forwards or not, the PE subnet's network policies), and flows by name from VMs and web
apps to storage accounts, SQL servers and key vaults. The engine's verdict (with the service's
code for ``Denied``, ``NotResolved`` for a name without an answer) must be what a real client sees
in the emulation: ``curl --cacert`` (storage and key vault over HTTPS, storage over HTTP),
python-tds (SQL) and ``dig`` (the answer itself)."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.engine.dns import resolve
from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace
from vnetlab.model import Topology

import test_netns_backend
from conftest import build
from netns_support import NETNS_MARKS, curl_failure  # noqa: E402

lab = test_netns_backend.lab  # the fixture: teardown + leftovers check

SERVICES = ("Microsoft.Storage", "Microsoft.Sql", "Microsoft.KeyVault")
ZONES = ("privatelink.blob.core.windows.net", "privatelink.database.windows.net", "privatelink.vaultcore.azure.net")
PE_SUBNETS = ("hub/pe", "spoke/pe")
# (resource kind, name, group id of its private endpoint, its private DNS zone)
RESOURCES = (("storage_accounts", "acct1", "blob", ZONES[0]), ("storage_accounts", "acct2", "blob", ZONES[0]),
             ("sql_servers", "sql1", "sqlServer", ZONES[1]), ("key_vaults", "kv1", "vault", ZONES[2]))
DOC_SOURCE = "203.0.113.7"   # an address in IP rules that no source of the lab has


def generate(seed: int) -> dict:
    """hub (VMs, a PE subnet, a subnet with random service endpoints, an app integration subnet),
    spoke peered with the hub (a VM, a PE subnet), other unpeered (a VM; its VNet's DNS maybe a
    custom DNS VM that forwards to Azure DNS or nowhere); two storage accounts, a SQL server and
    a key vault with random public access and firewalls, each maybe behind a PE (Approved or
    Pending, in the hub or the spoke, with or without its zone group); the three privatelink
    zones linked at random (Default or NxDomainRedirect); an NSG on the hub's PE subnet refusing
    the spoke, which applies only under the subnet's network policies."""
    rnd = random.Random(seed)
    endpoints = [s for s in SERVICES if rnd.random() < 0.7]
    custom_dns = rnd.random() < 0.5
    vnets = [
        {"name": "hub", "address_space": ["10.1.0.0/16"], "peerings": [{"name": "to-spoke", "remote_virtual_network": "spoke"}],
         "subnets": [
             {"name": "default", "address_prefix": "10.1.0.0/24"},
             {"name": "pe", "address_prefix": "10.1.1.0/24", "network_security_group": "nsg-pe",
              "private_endpoint_network_policies": rnd.choice(["Disabled", "Enabled"])},
             {"name": "se", "address_prefix": "10.1.3.0/24", "service_endpoints": endpoints},
             {"name": "integration", "address_prefix": "10.1.2.0/26", "delegations": ["Microsoft.Web/serverFarms"],
              "service_endpoints": [s for s in SERVICES if rnd.random() < 0.5]}]},
        {"name": "spoke", "address_space": ["10.2.0.0/16"], "peerings": [{"name": "to-hub", "remote_virtual_network": "hub"}],
         "subnets": [{"name": "default", "address_prefix": "10.2.0.0/24"}, {"name": "pe", "address_prefix": "10.2.1.0/24"}]},
        {"name": "other", "address_space": ["10.3.0.0/16"], "subnets": [{"name": "default", "address_prefix": "10.3.0.0/24"}]},
    ]
    vms = [{"name": "vmhub", "subnet": "hub/default"}, {"name": "vmse", "subnet": "hub/se"},
           {"name": "vmspoke", "subnet": "spoke/default"}, {"name": "vmother", "subnet": "other/default"}]
    if custom_dns:
        vnets[2]["dns_servers"] = ["10.3.0.53"]
        vms.append({"name": "dns1", "subnet": "other/default", "private_ip_address": "10.3.0.53",
                    "dns_server": {"forwarders": rnd.choice([["168.63.129.16"], []])}})
    nsg = {"name": "nsg-pe", "security_rules": [
        {"name": "no-spoke", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
         "source_address_prefix": "10.2.0.0/16", "destination_address_prefix": "*", "source_port_range": "*",
         "destination_port_range": rnd.choice(["443", "1433", "*"])}]}
    zones = [{"name": z, "virtual_network_links": [
        {"name": f"link-{v}", "virtual_network": v, "resolution_policy": rnd.choice(["Default", "Default", "NxDomainRedirect"])}
        for v in ("hub", "spoke", "other") if rnd.random() < 0.5]} for z in ZONES]
    storage = [{"name": name, "public_network_access": _public_access(rnd), "network_rule_set": {
        "default_action": rnd.choice(["Allow", "Deny", "Deny"]),
        "ip_rules": [DOC_SOURCE] if rnd.random() < 0.3 else [],
        "virtual_network_rules": ["hub/se"] if "Microsoft.Storage" in endpoints and rnd.random() < 0.6 else []}}
        for _, name, _, _ in RESOURCES[:2]]
    sql_rule = rnd.random()
    sql = {"name": "sql1", "public_network_access": _public_access(rnd),
           "firewall_rules": [{"name": "azure", "start_ip_address": "0.0.0.0", "end_ip_address": "0.0.0.0"}]
           if rnd.random() < 0.25 else [],
           "virtual_network_rules": [] if sql_rule < 0.3 else [
               {"name": "se", "subnet": "hub/se", "ignore_missing_vnet_service_endpoint": "Microsoft.Sql" not in endpoints}]}
    vault = {"name": "kv1", "public_network_access": _public_access(rnd), "network_acls": {
        "default_action": rnd.choice(["Allow", "Deny", "Deny"]),
        "virtual_network_rules": ["hub/se"] if "Microsoft.KeyVault" in endpoints and rnd.random() < 0.6 else []}}
    pes = []
    for _kind, name, group, zone in RESOURCES:
        if rnd.random() < 0.7:
            pe = {"name": f"pe-{name}", "subnet": rnd.choice(PE_SUBNETS), "target": name, "group_id": group,
                  "connection_state": "Approved" if rnd.random() < 0.8 else "Pending"}
            if rnd.random() < 0.7:
                pe["private_dns_zone_group"] = [zone]
            pes.append(pe)
    return {"name": f"paasdiff{seed}", "location": "westeurope", "virtual_networks": vnets,
            "network_security_groups": [nsg], "virtual_machines": vms,
            "app_service_plans": [{"name": "plan1", "sku": "P1v3"}],
            "web_apps": [{"name": "appint", "plan": "plan1", "vnet_integration": "hub/integration",
                          "vnet_route_all_enabled": rnd.random() < 0.5},
                         {"name": "apppub", "plan": "plan1"}],
            "private_dns_zones": zones, "private_endpoints": pes, "storage_accounts": storage,
            "sql_servers": [sql], "key_vaults": [vault]}


def _public_access(rnd: random.Random) -> str:
    return "Disabled" if rnd.random() < 0.25 else "Enabled"


# the names a flow asks for, with the port its client uses
TARGETS = (("acct1.blob.core.windows.net", 443), ("acct2.blob.core.windows.net", 443),
           ("acct1.blob.core.windows.net", 80), ("acct1.privatelink.blob.core.windows.net", 443),
           ("sql1.database.windows.net", 1433), ("sql1.privatelink.database.windows.net", 1433),
           ("acct2.file.core.windows.net", 445), ("kv1.vault.azure.net", 443), ("nosuch.blob.core.windows.net", 443))
SOURCES = ("vmhub", "vmse", "vmspoke", "vmother", "appint", "apppub")


def flows(seed: int) -> list[tuple[str, str, int]]:
    """Every source to every name (a lab of this size is asked everything), in a seeded random order."""
    out = [(src, name, port) for src in SOURCES for name, port in TARGETS]
    random.Random(seed * 7919).shuffle(out)
    return out


def expected(t) -> str:
    """The engine's verdict as the real client can tell it: ``Denied <code>`` for a refusal."""
    if t.verdict == "Denied":
        return f"Denied {t.admission.code}"
    return t.verdict


# -- coverage ------------------------------------------------------------------------------------------
def path_of(t) -> str | None:
    """The way the flow reached (or was stopped before) the service: private endpoint, service endpoint,
    public endpoint (None: it never got there)."""
    for st in t.steps:
        d = st.detail
        if st.kind == "Admission":
            return "service endpoint" if d.source_subnet else \
                "public endpoint" if d.endpoint == "public" else "private endpoint"
        if st.kind == "Deliver" and "private endpoint" in (getattr(d, "why", None) or ""):
            return "private endpoint"
    return None


def coverage(fl, traces) -> Counter:
    out: Counter = Counter()
    for (src, _name, _port), t in zip(fl, traces, strict=True):
        out[expected(t)] += 1
        if t.verdict == "NotResolved":
            out[f"NotResolved {t.resolution.outcome}"] += 1
        path = path_of(t)
        if path:
            out[f"{path} from {'an app' if src.startswith('app') else 'a VM'}"] += 1
    return out


PATHS = {f"{p} from {s}" for p in ("private endpoint", "service endpoint", "public endpoint") for s in ("a VM", "an app")}
VERDICTS = {"Connected", "TimedOut", "NotResolved", "NotResolved NXDOMAIN", "NotResolved Timeout",
            "Denied AuthorizationFailure", "Denied 47073", "Denied 40615", "Denied 40914", "Denied 40531",
            "Denied ForbiddenByFirewall", "Denied ForbiddenByConnection"}
SEEDS = (5, 6, 16, 39)
# what every seed's flows must exercise; all seeds together cover every path and verdict kind
EVERY_SEED = {"Connected", "NotResolved", "private endpoint from a VM", "public endpoint from a VM"}


def engine_traces(topo: Topology, fl) -> list:
    view = LabView(topo)
    return [trace(view, src, name, port) for src, name, port in fl]


def test_the_generator_covers_every_path_and_verdict():
    """Without the kernel: the seeds the kernel test runs exercise every path (PE, service endpoint,
    public, from VMs and apps) and every verdict kind (each service's refusals, both ways a name
    fails, drops), and each seed the basics."""
    union: Counter = Counter()
    for seed in SEEDS:
        fl = flows(seed)
        got = coverage(fl, engine_traces(build(generate(seed)), fl))
        assert {k for k, n in got.items() if n} >= EVERY_SEED, (seed, got)
        union += got
    assert {k for k, n in union.items() if n} >= PATHS | VERDICTS, union


# -- the real clients ---------------------------------------------------------------------------------
CLIENT = r'''
import json, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
a = json.loads(sys.stdin.read())
T = a["timeout"]

def http(name, port):
    url = ("https://%s/" if port == 443 else "http://%s/") % name
    if name.startswith("kv"):
        url += "secrets?api-version=7.4"
    p = subprocess.run(["curl", "-sS", "-i", "--cacert", a["ca"], "--connect-timeout", str(T),
                        "--max-time", str(T + 7), url], capture_output=True, text=True)
    return {"exit": p.returncode, "out": p.stdout, "err": p.stderr.strip()}

def sql(name):
    import pytds
    try:
        pytds.connect(name, "master", "u", "p", port=1433, login_timeout=T + 3, timeout=T + 3, autocommit=True,
                      disable_connect_retry=True).close()
        return {"login": True}
    except Exception as e:
        chain = []
        while e is not None and e not in chain:
            chain.append(e)
            e = e.__cause__ or e.__context__
        number = next((x.msg_no for x in chain if getattr(x, "msg_no", None)), None)
        return {"login": False, "number": number, "errors": [type(x).__name__ + ": " + str(x) for x in chain]}

def smb(name):
    import uuid
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    conn = Connection(uuid.uuid4(), name, 445, require_signing=False)
    try:
        conn.connect(timeout=T + 3)
        Session(conn, "acct", "key", require_encryption=False).connect()
        return {"error": None}
    except Exception as e:
        return {"error": type(e).__name__, "text": str(e)}

def dig(name):
    p = subprocess.run(["dig", "+tries=1", "+time=%d" % T, name, "A"], capture_output=True, text=True)
    return {"exit": p.returncode, "out": p.stdout}

def one(f):
    name, port = f
    return sql(name) if port == 1433 else smb(name) if port == 445 else http(name, port)

with ThreadPoolExecutor(max_workers=32) as ex:
    got = list(ex.map(one, a["flows"]))
    names = list(ex.map(dig, a["names"]))
print(json.dumps({"flows": got, "dig": names}))
'''
TIMEOUT = 3   # the clients' connect timeout (seconds); answers get more (a loaded machine is slow to answer)


def real_verdict(port: int, got: dict) -> str:
    """What the real client saw, in the engine's words."""
    if port == 1433:
        if got["login"]:
            return "Connected"
        if got["number"]:
            return f"Denied {got['number']}"
        text = " ".join(got["errors"]).lower()
        return "NotResolved" if "name or service not known" in text or "name resolution" in text or "no address" in text \
            else "Refused" if "refused" in text else "TimedOut" if "timed out" in text or "timeout" in text \
            else f"? {got['errors']}"
    if port == 445:   # admitted: asked for credentials (the lab holds no keys); refused: access denied
        error, text = got["error"], got.get("text", "").lower()
        return "Connected" if error == "LogonFailure" else "Denied AuthorizationFailure" if error == "AccessDenied" \
            else "NotResolved" if "name resolution" in text or "name or service not known" in text \
            else "TimedOut" if "timed out" in text else f"? {error}: {text}"
    if "resolving timed out" in got["err"].lower():   # curl's connect timeout holds the lookup
        return "NotResolved"
    if (failure := curl_failure(got)) is not None:
        return failure
    head, _, body = got["out"].replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    if status in (200, 401):   # 401: a key vault admitted a caller who brought no token
        return "Connected"
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    code = headers.get("x-ms-error-code")
    if code is None and body.strip().startswith("{"):   # a key vault's JSON error: its inner code
        code = (json.loads(body)["error"].get("innererror") or {}).get("code")
    return f"Denied {code}" if status == 403 else f"HTTP {status}"


def dig_answer(out: dict) -> tuple[str, list[str]]:
    """(outcome as the engine says it, the A records) of dig's output."""
    text = out["out"]
    if "connection timed out" in text or "no servers could be reached" in text or out["exit"] == 9:
        return "Timeout", []
    status = text.split("status: ", 1)[1].split(",", 1)[0] if "status: " in text else "?"
    addresses = sorted(line.split()[-1] for line in text.splitlines()
                       if line and not line.startswith(";") and line.split()[3:4] == ["A"])
    if status == "NOERROR":
        return ("NoError", addresses) if addresses else ("NoAnswer", [])
    return {"NXDOMAIN": "NXDOMAIN", "SERVFAIL": "Timeout", "REFUSED": "Timeout"}.get(status, status), []


def engine_answer(res) -> tuple[str, list[str]]:
    return res.outcome, sorted(str(a) for a in res.addresses)


@NETNS_MARKS[0]
@NETNS_MARKS[1]
@pytest.mark.parametrize("seed", SEEDS)
def test_engine_equals_real_clients(lab, seed, capsys):
    pytest.importorskip("pytds")
    pytest.importorskip("smbprotocol")
    lab.up(Topology.model_validate(generate(seed)), "netns")
    fl = flows(seed)
    view = lab.network()
    traces = [trace(view, src, name, port) for src, name, port in fl]
    names = sorted({name for _, name, _ in fl})
    ca = str(lab.home / "tls" / "ca.pem")
    by_src = {src: [i for i, f in enumerate(fl) if f[0] == src] for src in dict.fromkeys(s for s, _, _ in fl)}

    def run(src: str) -> dict:
        args = {"ca": ca, "timeout": TIMEOUT, "flows": [[fl[i][1], fl[i][2]] for i in by_src[src]], "names": names}
        p = nx.run_in(nb.namespace_of(lab, src), [sys.executable, "-c", CLIENT], input=json.dumps(args), timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    with ThreadPoolExecutor(max_workers=len(by_src)) as ex:
        answers = dict(zip(by_src, ex.map(run, by_src), strict=True))
    bad = []
    for src, idx in by_src.items():
        for i, got in zip(idx, answers[src]["flows"], strict=True):
            real = real_verdict(fl[i][2], got)
            if real != expected(traces[i]):
                bad.append((fl[i], expected(traces[i]), traces[i].reason, real))
        for name, got in zip(names, answers[src]["dig"], strict=True):
            want = engine_answer(resolve(view, src, name))
            if dig_answer(got) != want:
                bad.append(((src, name, "dig"), want, "", dig_answer(got)))
    with capsys.disabled():
        for f, want, reason, real in bad[:15]:
            print(f"  MISMATCH {f}: engine {want} ({reason}) real {real}")
    assert not bad, f"{len(bad)} of {len(fl) + len(names) * len(by_src)} answers differ"
    assert {k for k, n in coverage(fl, traces).items() if n} >= EVERY_SEED

