"""The ARM endpoint's plumbing: TLS, discovery and sign-in, ARM conventions, resource groups."""

from __future__ import annotations

import base64
import json
import ssl
import time

import httpx
import pytest

from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.api.azsetup import az_setup_script
from vnetlab.api.discovery import SUBSCRIPTION, TENANT
from vnetlab.api.server import is_loopback

SUB = f"/subscriptions/{SUBSCRIPTION}"


@pytest.fixture(scope="session")
def home(tmp_path_factory):
    """Where the endpoint's certificates are made (the lab directory of the TLS tests)."""
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def tls(home):
    return ensure_tls(home)


@pytest.fixture(scope="session")
def ca(tls):
    """What httpx verifies the endpoint with: the lab's CA only."""
    return ssl.create_default_context(cafile=str(tls.ca))


@pytest.fixture
def server(tmp_path, tls):
    """An endpoint serving a lab of this test's own."""
    with ServerThread(create_app(tmp_path / "lab"), tls) as url:
        yield url


@pytest.fixture(scope="session")
def locked_server(tmp_path_factory, tls):
    with ServerThread(create_app(tmp_path_factory.mktemp("locked"), require_token="s3cret"), tls) as url:
        yield url


@pytest.fixture()
def http(server, ca):
    with httpx.Client(base_url=server, verify=ca,
                      headers={"Authorization": "Bearer anything"}) as client:
        yield client


def error(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert body["error"]["message"]
    return resp.status_code, body["error"]["code"]


# -- TLS --------------------------------------------------------------------------------------

def test_tls_files_are_made_once_and_reused(home, tls):
    before = [p.read_bytes() for p in (tls.ca, tls.chain, tls.key)]
    again = ensure_tls(home)
    assert [p.read_bytes() for p in (again.ca, again.chain, again.key)] == before
    assert tls.ca.parent == home / "tls"
    assert (tls.key.stat().st_mode & 0o077) == 0


def test_tls_is_verified_with_the_lab_ca(server, ca):
    assert httpx.get(f"{server}/metadata/endpoints", verify=ca).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server}/metadata/endpoints", verify=ssl.create_default_context())


def test_localhost_name_is_in_the_certificate(server, ca):
    port = server.rsplit(":", 1)[1]
    assert httpx.get(f"https://localhost:{port}/metadata/endpoints", verify=ca).status_code == 200


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


# -- discovery and sign-in ---------------------------------------------------------------------

def test_metadata_endpoints_point_at_us(http, server):
    doc = http.get("/metadata/endpoints", params={"api-version": "2022-09-01"}).json()
    assert doc["resourceManager"] == server + "/"
    assert doc["authentication"]["loginEndpoint"] == server
    assert doc["authentication"]["audiences"] == ["https://management.azure.com/"]
    for key in ("portal", "media", "graphAudience", "graph", "name", "suffixes", "batch", "vmImageAliasDoc",
                "activeDirectoryDataLake", "sqlManagement", "gallery"):
        assert key in doc
    # the 2019-05-01 shape is a list of clouds
    older = http.get("/metadata/endpoints", params={"api-version": "2019-05-01"}).json()
    assert isinstance(older, list) and older[0]["resourceManager"] == server + "/"


def test_metadata_needs_no_token(server, ca):
    assert httpx.get(f"{server}//metadata/endpoints?api-version=2022-09-01", verify=ca).status_code == 200


def test_openid_configuration_and_token(http, server):
    conf = http.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
    assert conf["token_endpoint"] == f"{server}/{TENANT}/oauth2/v2.0/token"
    assert conf["issuer"] == f"{server}/{TENANT}/v2.0"
    form = {"client_id": "22222222-2222-2222-2222-222222222222", "grant_type": "client_credentials",
            "client_secret": "x", "scope": "https://management.azure.com//.default"}
    tok = http.post(f"/{TENANT}/oauth2/v2.0/token", data=form).json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] > 0
    payload = tok["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["tid"] == TENANT and claims["appid"] == form["client_id"] and claims["oid"]
    assert claims["exp"] > time.time()
    v1 = http.post(f"/{TENANT}/oauth2/token", data={**form, "resource": "https://management.azure.com/"}).json()
    assert v1["resource"] == "https://management.azure.com/" and v1["access_token"] and int(v1["expires_on"]) > 0


def test_subscriptions_tenants_and_locations(http):
    subs = http.get("/subscriptions", params={"api-version": "2022-12-01"}).json()["value"]
    assert subs == [http.get(SUB).json()]
    assert subs[0]["subscriptionId"] == SUBSCRIPTION and subs[0]["state"] == "Enabled"
    assert subs[0]["tenantId"] == TENANT
    assert http.get("/tenants").json()["value"][0]["tenantId"] == TENANT
    locs = {loc["name"]: loc for loc in http.get(f"{SUB}/locations").json()["value"]}
    assert {"westeurope", "eastus", "northeurope", "westus2"} <= set(locs)
    we = locs["westeurope"]
    assert we["displayName"] == "West Europe" and we["regionalDisplayName"] == "(Europe) West Europe"
    assert we["metadata"]["pairedRegion"][0]["name"] == "northeurope"


def test_unknown_subscription(http):
    other = "/subscriptions/11111111-1111-1111-1111-111111111111"
    for path in (other, f"{other}/locations", f"{other}/resourcegroups", f"{other}/resourcegroups/rg"):
        assert error(http.get(path)) == (404, "SubscriptionNotFound")


def test_providers(http):
    doc = http.get(f"{SUB}/providers/microsoft.network").json()
    assert doc["namespace"] == "Microsoft.Network" and doc["registrationState"] == "Registered"
    assert any(t["resourceType"] == "virtualNetworks" for t in doc["resourceTypes"])
    assert http.post(f"{SUB}/providers/Microsoft.Web/register").json()["registrationState"] == "Registered"
    assert error(http.get(f"{SUB}/providers/Microsoft.Nope")) == (404, "InvalidResourceNamespace")
    assert {p["namespace"] for p in http.get("/providers").json()["value"]} >= {"Microsoft.Web"}


def test_check_name_availability(http):
    url = f"{SUB}/providers/Microsoft.Web/checknameavailability"
    assert http.post(url, json={"name": "app1", "type": "Site"}).json() == {"nameAvailable": True}
    bad = http.post(url, json={"name": "-bad_", "type": "Site"}).json()
    assert bad["nameAvailable"] is False and bad["reason"] == "Invalid"
    assert error(http.post(url, json={"type": "Site"})) == (400, "InvalidRequestContent")


# -- ARM conventions ---------------------------------------------------------------------------

def test_paths_are_case_insensitive_and_ids_keep_their_case(http):
    put = http.put(f"{SUB}/resourceGroups/CaseRG", params={"api-version": "2025-04-01"}, json={"location": "eastus"})
    assert put.status_code == 201
    for path in (f"{SUB}/resourcegroups/caserg", f"/SUBSCRIPTIONS/{SUBSCRIPTION}/RESOURCEGROUPS/CASERG",
                 f"/Subscriptions/{SUBSCRIPTION}/ResourceGroups/caseRg/"):
        got = http.get(path, params={"api-version": "1999-01-01"})
        assert got.status_code == 200, path
        assert got.json()["id"] == f"{SUB}/resourceGroups/CaseRG" and got.json()["name"] == "CaseRG"


def test_any_api_version_or_none(http):
    for params in ({"api-version": "2015-01-01"}, {"api-version": "not-a-date"}, {}):
        assert http.get("/subscriptions", params=params).status_code == 200


def test_unknown_top_level_key_is_a_400(http):
    # what a snake_case dict handed to the TypeSpec SDKs puts on the wire
    resp = http.put(f"{SUB}/resourcegroups/rgx", json={"location": "eastus", "address_space": {}})
    assert error(resp) == (400, "InvalidRequestContent")
    assert "address_space" in resp.json()["error"]["message"]
    assert http.head(f"{SUB}/resourcegroups/rgx").status_code == 404  # nothing was created


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b"\"text\"", b"\xff\xfe", b'{"location": 5}',
                                  b'{"location": "eastus", "tags": {"a": 1}}', b'{"location": "eastus", "tags": []}'])
def test_malformed_bodies_are_400(http, body):
    resp = http.put(f"{SUB}/resourcegroups/rgbad", content=body, headers={"Content-Type": "application/json"})
    assert error(resp) == (400, "InvalidRequestContent")
    assert http.head(f"{SUB}/resourcegroups/rgbad").status_code == 404


def test_oversized_body_is_413(http):
    big = b'{"location": "eastus", "tags": {"a": "' + b"x" * (4 * 1024 * 1024) + b'"}}'
    assert error(http.put(f"{SUB}/resourcegroups/rgbig", content=big)) == (413, "RequestEntityTooLarge")
    assert http.head(f"{SUB}/resourcegroups/rgbig").status_code == 404


def test_404_shapes(http):
    assert error(http.get(f"{SUB}/resourcegroups/missing")) == (404, "ResourceGroupNotFound")
    assert error(http.delete(f"{SUB}/resourcegroups/missing")) == (404, "ResourceGroupNotFound")
    assert error(http.get("/no/such/thing")) == (404, "NotFound")
    assert error(http.get(f"{SUB}/resourceGroups/rg/providers/Microsoft.Nope/things/x")) == \
        (400, "InvalidResourceType")


def test_wrong_method_is_405(http):
    resp = http.delete("/subscriptions")
    assert error(resp) == (405, "HttpMethodNotAllowed") and "GET" in resp.headers["allow"]


def test_request_ids_are_echoed(http):
    resp = http.get("/subscriptions", headers={"x-ms-client-request-id": "abc"})
    assert resp.headers["x-ms-client-request-id"] == "abc" and resp.headers["x-ms-request-id"]


# -- auth ----------------------------------------------------------------------------------------

def test_any_token_or_none_is_accepted_by_default(server, ca):
    assert httpx.get(f"{server}/subscriptions", verify=ca).status_code == 200
    assert httpx.get(f"{server}/subscriptions", verify=ca,
                     headers={"Authorization": "Bearer whatever"}).status_code == 200


def test_require_token(locked_server, ca):
    def get(path, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(locked_server + path, verify=ca, headers=headers)

    assert error(get("/subscriptions")) == (401, "InvalidAuthenticationToken")
    assert error(get("/subscriptions", "wrong")) == (401, "InvalidAuthenticationToken")
    assert error(get("/no/such/path", "wrong")) == (401, "InvalidAuthenticationToken")
    assert get("/subscriptions", "s3cret").status_code == 200
    # discovery and sign-in stay open; the token endpoint wants the shared secret as client secret
    assert get("/metadata/endpoints").status_code == 200
    token_url = f"{locked_server}/{TENANT}/oauth2/v2.0/token"
    bad = httpx.post(token_url, verify=ca, data={"client_id": "c", "client_secret": "no"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    issued = httpx.post(token_url, verify=ca, data={"client_id": "c", "client_secret": "s3cret"})
    assert get("/subscriptions", issued.json()["access_token"]).status_code == 200
    forged = issued.json()["access_token"][:-4] + "AAAA"
    assert get("/subscriptions", forged).status_code == 401


# -- resource groups, ETags ----------------------------------------------------------------------

def test_resource_group_crud(http):
    url = f"{SUB}/resourcegroups/crud"
    created = http.put(url, json={"location": "West Europe", "tags": {"env": "lab"}})
    assert created.status_code == 201
    body = created.json()
    assert body["location"] == "westeurope" and body["tags"] == {"env": "lab"}
    assert body["properties"] == {"provisioningState": "Succeeded"}
    assert body["type"] == "Microsoft.Resources/resourceGroups"
    assert http.put(url, json={"location": "westeurope"}).status_code == 200
    assert http.head(url).status_code == 204
    assert "crud" in [g["name"] for g in http.get(f"{SUB}/resourcegroups").json()["value"]]
    assert http.patch(url, json={"tags": {"a": "b"}}).json()["tags"] == {"a": "b"}
    assert error(http.put(url, json={"location": "eastus"})) == (409, "InvalidResourceGroupLocation")
    assert http.delete(url).status_code == 200
    assert http.head(url).status_code == 404


def test_resource_group_validation(http):
    assert error(http.put(f"{SUB}/resourcegroups/noloc", json={})) == (400, "LocationRequired")
    assert error(http.put(f"{SUB}/resourcegroups/badloc", json={"location": "mars"})) == \
        (400, "LocationNotAvailableForResourceGroup")
    assert error(http.put(f"{SUB}/resourcegroups/bad%20name", json={"location": "eastus"})) == \
        (400, "InvalidResourceGroup")
    assert error(http.put(f"{SUB}/resourcegroups/dot.", json={"location": "eastus"})) == \
        (400, "InvalidResourceNameTrailingCharacters")


def test_etags_and_conditional_requests(http):
    url = f"{SUB}/resourcegroups/etags"
    assert error(http.put(url, json={"location": "eastus"}, headers={"If-Match": "*"})) == (412, "PreconditionFailed")
    first = http.put(url, json={"location": "eastus"}, headers={"If-None-Match": "*"})
    assert first.status_code == 201
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.json()["etag"] == etag
    assert http.get(url).headers["etag"] == etag
    assert http.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert error(http.put(url, json={"location": "eastus"}, headers={"If-None-Match": "*"})) == \
        (412, "PreconditionFailed")
    assert error(http.put(url, json={"location": "eastus"}, headers={"If-Match": 'W/"stale"'})) == \
        (412, "PreconditionFailed")
    changed = http.put(url, json={"location": "eastus", "tags": {"v": "2"}}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert error(http.delete(url, headers={"If-Match": etag})) == (412, "PreconditionFailed")
    assert http.delete(url, headers={"If-Match": changed.headers["etag"].removeprefix("W/")}).status_code == 200


def test_no_500_on_garbage(http):
    cases = [("PUT", f"{SUB}/resourcegroups/g1", b"null"), ("PATCH", f"{SUB}/resourcegroups/g1", b"{}"),
             ("POST", f"{SUB}/providers/Microsoft.Web/checknameavailability", b"[]"),
             ("PUT", f"{SUB}/resourcegroups/" + "x" * 300, b'{"location":"eastus"}'),
             ("GET", "/%00/%ff", b""), ("PUT", f"{SUB}/resourcegroups/g2", b'{"location":"eastus","zones":"1"}'),
             ("POST", f"/{TENANT}/oauth2/v2.0/token", b"\xff\x00garbage")]
    for method, path, body in cases:
        resp = http.request(method, path, content=body)
        assert resp.status_code < 500, (method, path, resp.text)


# -- the SDK ----------------------------------------------------------------------------------------

class FakeCred:
    def get_token(self, *scopes, **kw):
        from azure.core.credentials import AccessToken
        return AccessToken("fake-token", int(time.time()) + 3600)


def test_resource_sdk_drives_groups(server, tls):
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.resources.models import ResourceGroup

    res = ResourceManagementClient(FakeCred(), SUBSCRIPTION, base_url=server, connection_verify=str(tls.ca),
                                   polling_interval=0)
    rg = res.resource_groups.create_or_update("sdkrg", ResourceGroup(location="eastus", tags={"k": "v"}))
    assert rg.id == f"{SUB}/resourceGroups/sdkrg" and rg.properties.provisioning_state == "Succeeded"
    assert res.resource_groups.check_existence("SDKRG") is True
    assert res.resource_groups.get("sdkrg").tags == {"k": "v"}
    assert "sdkrg" in [g.name for g in res.resource_groups.list()]
    res.resource_groups.begin_delete("sdkrg").result()
    assert res.resource_groups.check_existence("sdkrg") is False
    with pytest.raises(ResourceNotFoundError) as info:
        res.resource_groups.get("sdkrg")
    assert info.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(HttpResponseError) as info:
        res.resource_groups.create_or_update("badloc", ResourceGroup(location="atlantis"))
    assert info.value.error.code == "LocationNotAvailableForResourceGroup"


# -- az-setup ----------------------------------------------------------------------------------------

def test_az_setup_script_shape(tmp_path):
    script = az_setup_script("https://127.0.0.1:8443/", tmp_path / "ca dir/ca.pem", tmp_path / "azcfg")
    assert "export AZURE_CONFIG_DIR=" in script and "export AZURE_CORE_INSTANCE_DISCOVERY=false" in script
    assert f"export REQUESTS_CA_BUNDLE='{tmp_path}/ca dir/ca.pem'" in script
    assert "--endpoint-resource-manager https://127.0.0.1:8443/ " in script
    assert "--endpoint-active-directory https://127.0.0.1:8443 " in script
    assert "az cloud set --name vnetlab" in script and "az login --service-principal" in script
    assert "exit" not in script and "set -e" not in script  # it is sourced into the user's shell


def test_az_setup_for_a_lab_home(tmp_path, monkeypatch):
    from vnetlab.api import az_setup_for
    monkeypatch.chdir(tmp_path)
    script = az_setup_for("lab", port=9443, require_token="tok")
    assert f"export AZURE_CONFIG_DIR={tmp_path}/lab/azure" in script
    assert f"export REQUESTS_CA_BUNDLE={tmp_path}/lab/tls/ca.pem" in script
    assert "https://127.0.0.1:9443/" in script and "--password tok" in script


# -- vnetlab serve stops on SIGTERM and Ctrl-C ---------------------------------------------------

def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_serve_stops_within_2s_while_a_client_holds_a_keep_alive_connection(tmp_path, signum):
    """The SDK keeps its TLS connection open between calls; serve must not wait for it (issue 8 §2)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vnetlab.cli.main", "serve", "--port", str(port),
                             "--home", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "vnetlab serve did not start"
                time.sleep(0.1)
        client = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.pem")).wrap_socket(
            raw, server_hostname="127.0.0.1")
        client.sendall(b"GET /metadata/endpoints HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
        assert client.recv(64).startswith(b"HTTP/1.1 200")   # answered; the connection stays open, idle
        proc.send_signal(getattr(signal, signum))
        time.sleep(2)
        assert proc.poll() is not None, f"vnetlab serve still running 2 s after {signum}"
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
