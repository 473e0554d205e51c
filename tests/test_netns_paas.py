"""Real PaaS endpoints in the emulation: curl by name to a storage account (through its private
endpoint, or its public endpoint), a real TDS client (python-tds) against a SQL server, and a key
vault's ``/healthstatus``: each answers what the engine's trace of the same flow says (verdict,
the service's code, the source it sees)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.backends.netns.apply import K_PROC
from vnetlab.lab import Lab
from vnetlab.topology import load_yaml, parse
from netns_support import NETNS_MARKS, TDS_CLIENT, emulated  # noqa: E402

pytestmark = NETNS_MARKS

LAB = textwrap.dedent("""
    name: paas
    location: westeurope
    virtual_networks:
      - name: hub
        address_space: [10.1.0.0/16]
        subnets:
          - {name: default, address_prefix: 10.1.0.0/24}
          - {name: pe, address_prefix: 10.1.1.0/24}
          - {name: se, address_prefix: 10.1.3.0/24, service_endpoints: [Microsoft.KeyVault, Microsoft.Storage]}
          - {name: integration, address_prefix: 10.1.2.0/26, delegations: [Microsoft.Web/serverFarms]}
      - name: other
        address_space: [10.3.0.0/16]
        subnets: [{name: default, address_prefix: 10.3.0.0/24}]
    virtual_machines:
      - {name: vm1, subnet: hub/default}
      - {name: sevm, subnet: hub/se}
      - {name: othervm, subnet: other/default}
    app_service_plans: [{name: plan1, sku: P1v3}]
    web_apps:
      - {name: app1, plan: plan1, vnet_integration: hub/integration}
    private_dns_zones:
      - name: privatelink.blob.core.windows.net
        virtual_network_links: [{name: link-hub, virtual_network: hub}]
      - name: privatelink.database.windows.net
        virtual_network_links: [{name: link-hub, virtual_network: hub}]
    private_endpoints:
      - {name: pe-blob, subnet: hub/pe, target: acct1, group_id: blob,
         private_dns_zone_group: [privatelink.blob.core.windows.net]}
      - {name: pe-sql, subnet: hub/pe, target: sql1, group_id: sqlServer,
         private_dns_zone_group: [privatelink.database.windows.net]}
    storage_accounts:
      - {name: acct1, network_rule_set: {default_action: Deny, virtual_network_rules: [hub/se]}}
    sql_servers:
      - {name: sql1, public_network_access: Disabled}
    key_vaults:
      - {name: kv1, network_acls: {default_action: Deny, virtual_network_rules: [hub/se]}}
    """)

BLOB, SQL, VAULT = "acct1.blob.core.windows.net", "sql1.database.windows.net", "kv1.vault.azure.net"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with emulated(tmp_path_factory.mktemp("paas") / "home", parse(load_yaml(LAB))) as lab:
        yield lab


def engine(lab: Lab, who: str, name: str, port: int) -> dict:
    return lab.trace(who, name, port).to_dict()


def admission(trace: dict) -> dict:
    """What the service decided, in the engine's trace."""
    return trace.get("admission") or {}


def curl(lab: Lab, who: str, url: str) -> tuple[int, dict[str, str], str]:
    ca = str(lab.home / "tls" / "ca.pem")
    out = nx.run_in(nb.namespace_of(lab, who), ["curl", "-s", "-i", "--max-time", "5", "--cacert", ca, url],
                    timeout=30).stdout
    head, _, body = out.partition("\n\n")   # text mode: CRLF read as LF
    lines = head.split("\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


@pytest.mark.parametrize("who", ["vm1", "sevm", "othervm", "app1"])
def test_storage_by_name_answers_as_the_engine_admits(lab, who):
    want = engine(lab, who, BLOB, 443)
    status, headers, body = curl(lab, who, f"https://{BLOB}/?comp=list")
    if want["verdict"] == "Connected":
        assert status == 200 and "<EnumerationResults" in body
    else:
        assert want["verdict"] == "Denied", want
        adm = admission(want)
        assert status == adm["http_status"] == 403
        assert headers["x-ms-error-code"] == adm["code"]
        assert f"<Code>{adm['code']}</Code><Message>{adm['text']}" in body


def test_private_endpoint_gives_200_and_public_path_403(lab):
    """The story: the same account by the same name, 200 from the linked hub (its private
    endpoint), 403 AuthorizationFailure from the unlinked VNet (the public endpoint, Deny)."""
    assert engine(lab, "vm1", BLOB, 443)["verdict"] == "Connected"
    assert engine(lab, "othervm", BLOB, 443)["verdict"] == "Denied"
    assert curl(lab, "vm1", f"https://{BLOB}/")[0] == 200
    status, headers, _ = curl(lab, "othervm", f"https://{BLOB}/")
    assert (status, headers.get("x-ms-error-code")) == (403, "AuthorizationFailure")




def tds(lab: Lab, who: str, host: str) -> dict:
    pytest.importorskip("pytds")
    out = nx.run_in(nb.namespace_of(lab, who), [sys.executable, "-c", TDS_CLIENT, host], timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("who", ["vm1", "othervm"])
def test_sql_login_as_the_engine_admits(lab, who):
    want = engine(lab, who, SQL, 1433)
    got = tds(lab, who, SQL)
    if want["verdict"] == "Connected":
        assert got == {"login": True}
    else:
        adm = admission(want)
        assert got["login"] is False and str(got["number"]) == str(adm.get("code"))
        assert got["text"] == adm.get("text")


def test_sql_public_access_disabled_is_47073(lab):
    got = tds(lab, "othervm", SQL)
    assert got["number"] == 47073
    assert "Deny Public Network Access" in got["text"]


@pytest.mark.parametrize("who", ["sevm", "othervm", "vm1"])
def test_key_vault_sees_the_source_the_engine_says(lab, who):
    want = engine(lab, who, VAULT, 443)
    status, headers, _ = curl(lab, who, f"https://{VAULT}/healthstatus")
    assert status == 200
    seen = re.match(r"addr=([^;]+);", headers["x-ms-keyvault-network-info"]).group(1)
    assert seen == want["source_ip_seen"]


def test_processes_are_named_after_their_resource(lab):
    ps = subprocess.run(["ps", "-eo", "pid,comm"], capture_output=True, text=True).stdout
    pids = {d.get("resource"): d["pid"] for _, _, d in lab.store.records(K_PROC) if d.get("pid")}
    for res in ("acct1", "sql1", "kv1"):
        assert re.search(rf"^\s*{pids[res]}\s+vl:{res}$", ps, re.M), res


@pytest.mark.parametrize("who", ["vm1", "sevm", "othervm", "app1"])
@pytest.mark.parametrize(("name", "port"), [(BLOB, 443), (SQL, 1433), (VAULT, 443)])
def test_check_by_name_on_the_kernel_equals_the_engine(lab, who, name, port):
    """What ``vnetlab check SRC NAME -p PORT`` shows for the kernel (``netns_backend.probe``): a
    real client asks the service through private endpoints, service endpoints and public paths,
    and the service's answer (Connected, or Denied with its code) is the engine's verdict."""
    tr = engine(lab, who, name, port)
    got = nb.probe(lab, tr)
    assert got["verdict"] == tr["verdict"], (tr["reason"], got)
    if tr["verdict"] == "Denied":
        assert str(tr["admission"]["code"]) in got["detail"]


PRIVATELINK_SQL = "sql1.privatelink.database.windows.net"


def test_sql_login_through_the_private_link_name_is_40531_from_the_kernel(lab):
    """The gateway takes the server from the login's server name: through the private link name the
    connection reaches the private endpoint and the login is refused with 40531, as the engine says;
    the same endpoint by the server's own name logs in."""
    want = engine(lab, "vm1", PRIVATELINK_SQL, 1433)
    assert (want["verdict"], admission(want)["code"]) == ("Denied", "40531")
    got = tds(lab, "vm1", PRIVATELINK_SQL)
    assert (got["login"], str(got["number"]), got["text"]) == (False, "40531", admission(want)["text"])
    assert tds(lab, "vm1", SQL) == {"login": True}
    probed = nb.probe(lab, want)
    assert probed["verdict"] == "Denied" and "error 40531" in probed["detail"]


FILE = "acct1.file.core.windows.net"
SMB_CLIENT = textwrap.dedent("""
    import json, sys, uuid
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    conn = Connection(uuid.uuid4(), sys.argv[1], 445, require_signing=False)
    try:
        conn.connect(timeout=5)
        Session(conn, "acct1", "key", require_encryption=False).connect()
        print(json.dumps({"error": None}))
    except Exception as e:
        print(json.dumps({"error": type(e).__name__, "status": getattr(e, "status", None)}))
    """)


def smb(lab: Lab, who: str, host: str) -> dict:
    pytest.importorskip("smbprotocol")
    out = nx.run_in(nb.namespace_of(lab, who), [sys.executable, "-c", SMB_CLIENT, host], timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("who", ["vm1", "sevm", "othervm", "app1"])
def test_azure_files_on_445_answers_as_the_engine_admits(lab, who):
    """A real SMB client (smbprotocol) to the account's file endpoint: admitted (through the service
    endpoint of a subnet the account's VNet rules name) it is asked for credentials (LogonFailure:
    the lab holds no keys), refused by the firewall it gets STATUS_ACCESS_DENIED; and ``check`` on the
    kernel says the engine's verdict."""
    want = engine(lab, who, FILE, 445)
    got = smb(lab, who, FILE)
    if want["verdict"] == "Connected":
        assert got["error"] == "LogonFailure", got
    else:
        assert (want["verdict"], admission(want)["code"]) == ("Denied", "AuthorizationFailure")
        assert (got["error"], got["status"]) == ("AccessDenied", 0xC0000022), got
    probed = nb.probe(lab, want)
    assert probed["verdict"] == want["verdict"], probed


def test_the_file_endpoint_admits_the_service_endpoint_and_refuses_others(lab):
    assert engine(lab, "sevm", FILE, 445)["verdict"] == "Connected"
    assert engine(lab, "othervm", FILE, 445)["verdict"] == "Denied"


def test_matrix_paas_probes_the_services_for_real(lab):
    """``vnetlab matrix --paas --backend netns``: every source class to every PaaS endpoint, each TCP
    connection that opens asked of the service, so a refusal is seen as ``Denied`` and agrees with
    the engine's cell."""
    from conftest import cli
    res = cli(lab.home, "matrix", "--ports", "443,1433,445,22", "--paas", "--backend", "netns", "-o", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    paas = {j for j, c in enumerate(doc["classes"]) if c["kind"] in ("storage_account", "sql_server", "key_vault",
                                                                       "private_endpoint")}
    probed = [c for c in doc["cells"] if c["destination"] in paas]
    assert doc["agree"] is True and probed and all(c["agree"] for c in probed)
    observed = {v for c in probed for v in c["observed"].values()}
    assert {"Connected", "Denied"} <= observed, observed
    # othervm's class to the storage account's public endpoint: the account's firewall refuses 443 and 445
    other = next(i for i, c in enumerate(doc["classes"]) if "othervm" in c["members"])
    acct = next(j for j, c in enumerate(doc["classes"]) if c["kind"] == "storage_account")
    cell = next(c for c in probed if (c["source"], c["destination"]) == (other, acct))
    assert (cell["observed"]["443"], cell["observed"]["445"]) == ("Denied", "Denied")


def test_matrix_table_with_paas_on_the_kernel(lab):
    from conftest import cli
    res = cli(lab.home, "matrix", "--ports", "443", "--paas", "--backend", "netns")
    assert res.exit_code == 0, res.output
    assert "Denied" in res.output
