"""Cloud discovery, fake Entra ID (AAD) sign-in, subscriptions, locations and providers.

This is what the az CLI asks for before any resource call
(https://learn.microsoft.com/cli/azure/manage-clouds-azure-cli): ``/metadata/endpoints`` when a cloud is registered, the OpenID configuration and
the token endpoint when it logs in, then ``/subscriptions``. The SDK needs none of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse
import uuid
from typing import Callable

from starlette.responses import Response

from ..model.errors import InvalidRequestContent
from ..model.ids import DEFAULT_SUBSCRIPTION
from .arm import ArmError, Call, Router, json_response

SUBSCRIPTION = DEFAULT_SUBSCRIPTION  # the lab's, unless its topology file names another
TENANT = "00000000-0000-0000-0000-000000000001"
CLIENT_ID = "22222222-2222-2222-2222-222222222222"
AUDIENCE = "https://management.azure.com/"
GRAPH = "https://graph.local/"
DEFAULT_SIGNING_KEY = "vnetlab"

# name, displayName, geographyGroup, physicalLocation, latitude, longitude, pairedRegion
_REGIONS = [
    ("eastus", "East US", "US", "Virginia", "37.3719", "-79.8164", "westus"),
    ("eastus2", "East US 2", "US", "Virginia", "36.6681", "-78.3889", "centralus"),
    ("westus", "West US", "US", "California", "37.783", "-122.417", "eastus"),
    ("westus2", "West US 2", "US", "Washington", "47.233", "-119.852", "westcentralus"),
    ("westus3", "West US 3", "US", "Phoenix", "33.448376", "-112.074036", "eastus"),
    ("centralus", "Central US", "US", "Iowa", "41.5908", "-93.6208", "eastus2"),
    ("westcentralus", "West Central US", "US", "Wyoming", "40.89", "-110.234", "westus2"),
    ("northeurope", "North Europe", "Europe", "Ireland", "53.3478", "-6.2597", "westeurope"),
    ("westeurope", "West Europe", "Europe", "Netherlands", "52.3667", "4.9", "northeurope"),
    ("uksouth", "UK South", "UK", "London", "50.941", "-0.799", "ukwest"),
    ("ukwest", "UK West", "UK", "Cardiff", "53.427", "-3.084", "uksouth"),
    ("francecentral", "France Central", "Europe", "Paris", "46.3772", "2.3730", "francesouth"),
    ("germanywestcentral", "Germany West Central", "Europe", "Frankfurt", "50.110924", "8.682127",
     "germanynorth"),
    ("swedencentral", "Sweden Central", "Europe", "Gävle", "60.67488", "17.14127", "swedensouth"),
    ("southeastasia", "Southeast Asia", "Asia Pacific", "Singapore", "1.283", "103.833", "eastasia"),
    ("eastasia", "East Asia", "Asia Pacific", "Hong Kong", "22.267", "114.188", "southeastasia"),
    ("japaneast", "Japan East", "Asia Pacific", "Tokyo, Saitama", "35.68", "139.77", "japanwest"),
    ("australiaeast", "Australia East", "Australia", "New South Wales", "-33.86", "151.2094", "australiasoutheast"),
]
LOCATIONS = {r[0]: r[1] for r in _REGIONS}


def normalize_location(value: str) -> str | None:
    """'West Europe' or 'westeurope' -> 'westeurope'; None when it is not a region we know."""
    key = value.replace(" ", "").lower()
    return key if key in LOCATIONS else None


# -- cloud metadata --------------------------------------------------------------------------

def metadata(call: Call) -> Response:
    """GET /metadata/endpoints (az cloud register reads it; api-version 2022-09-01 is one object,
    2019-05-01 and older a list). https://management.azure.com/metadata/endpoints?api-version=2022-09-01"""
    base = call.base_url
    doc = {
        "name": "vnetlab",
        "portal": base,
        "authentication": {"loginEndpoint": base, "audiences": [AUDIENCE], "tenant": "common",
                           "identityProvider": "AAD"},
        "media": "https://media.vnetlab.local/",
        "graphAudience": GRAPH,
        "graph": GRAPH,
        "microsoftGraphResourceId": GRAPH,
        "batch": "https://batch.vnetlab.local/",
        "resourceManager": base + "/",
        "vmImageAliasDoc": base + "/vmImageAliasDoc",
        "activeDirectoryDataLake": "https://datalake.vnetlab.local/",
        "sqlManagement": "https://sqlmanagement.vnetlab.local/",
        "gallery": "https://gallery.vnetlab.local/",
        "suffixes": {"azureDataLakeStoreFileSystem": "datalake.vnetlab.local",
                     "acrLoginServer": "acr.vnetlab.local", "sqlServerHostname": "sql.vnetlab.local",
                     "azureDataLakeAnalyticsCatalogAndJob": "datalakeanalytics.vnetlab.local",
                     "keyVaultDns": "vault.vnetlab.local", "storage": "storage.vnetlab.local",
                     "azureFrontDoorEndpointSuffix": "afd.vnetlab.local"},
    }
    version = call.request.query_params.get("api-version", "")
    return json_response([doc] if version and version <= "2019-05-01" else doc)


# -- sign-in ---------------------------------------------------------------------------------

def openid_configuration(call: Call) -> Response:
    """GET /{tenant}/v2.0/.well-known/openid-configuration (MSAL, once instance discovery is off)."""
    base, tenant = call.base_url, call.params["tenant"]
    v2 = f"{base}/{tenant}/oauth2/v2.0"
    return json_response({
        "token_endpoint": f"{v2}/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{v2}/authorize",
        "device_authorization_endpoint": f"{v2}/devicecode",
        "end_session_endpoint": f"{v2}/logout",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
        "tenant_region_scope": None,
        "cloud_instance_name": "vnetlab.local",
        "cloud_graph_host_name": "graph.local",
        "msgraph_host": "graph.local",
    })


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_JWT_HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')


def make_token(key: str, tenant: str, client_id: str, lifetime: int = 3600) -> str:
    """A JWT shaped like Entra ID's ARM tokens, HS256-signed with ``key`` so that the server
    can tell its own tokens apart when a token is required."""
    now = int(time.time())
    oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"vnetlab:{client_id}"))
    claims = {"aud": AUDIENCE, "iss": f"https://sts.vnetlab.local/{tenant}/", "iat": now, "nbf": now,
              "exp": now + lifetime, "appid": client_id, "appidacr": "1", "idtyp": "app", "oid": oid, "sub": oid,
              "tid": tenant, "ver": "1.0"}
    signing_input = f"{_JWT_HEADER}.{_b64(json.dumps(claims).encode())}"
    sig = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def token_is_valid(token: str, key: str) -> bool:
    """The shared token itself, or an unexpired JWT this server signed with it."""
    if hmac.compare_digest(token.encode(), key.encode()):
        return True
    parts = token.split(".")
    if len(parts) != 3:
        return False
    sig = hmac.new(key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(sig), parts[2]):
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return int(claims.get("exp", 0)) > time.time()
    except (ValueError, TypeError):
        return False


def _aad_error(status: int, error: str, description: str) -> Response:
    # Entra ID's OAuth error shape (not ARM's); MSAL reads error / error_description.
    return json_response({"error": error, "error_description": description, "error_codes": [7000215],
                          "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                          "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}, status)


def token_endpoint(require_token: str | None):
    """POST /{tenant}/oauth2/v2.0/token and the v1 /{tenant}/oauth2/token. Any client secret is
    accepted unless the server requires a token; then the secret must be that token."""

    def handler(call: Call) -> Response:
        form = urllib.parse.parse_qs(call.body.decode("utf-8", "replace"))
        client_id = (form.get("client_id") or [CLIENT_ID])[0]
        secret = (form.get("client_secret") or [""])[0]
        if require_token is not None and not hmac.compare_digest(secret.encode(), require_token.encode()):
            return _aad_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        tenant = call.params["tenant"]
        tenant = tenant if _is_guid(tenant) else TENANT
        token = make_token(require_token or DEFAULT_SIGNING_KEY, tenant, client_id)
        body = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        if "v2.0" not in call.request.url.path.lower():  # v1 answers strings and a resource
            now = int(time.time())
            body.update(expires_in="3599", ext_expires_in="3599", expires_on=str(now + 3599),
                        not_before=str(now), resource=(form.get("resource") or [AUDIENCE])[0])
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    return handler


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


# -- tenants, subscriptions, locations -------------------------------------------------------

def subscription_doc(sub: str) -> dict:
    return {"id": f"/subscriptions/{sub}", "authorizationSource": "RoleBased", "managedByTenants": [],
            "subscriptionId": sub, "tenantId": TENANT, "displayName": "vnetlab", "state": "Enabled",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                     "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"}}


def subscription_not_found(sub: str) -> ArmError:
    return ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")


def list_subscriptions(call: Call) -> Response:
    return json_response({"value": [subscription_doc(call.subscription)], "count": {"type": "Total", "value": 1}})


def get_subscription(call: Call) -> Response:
    return json_response(subscription_doc(call.subscription))


def list_tenants(call: Call) -> Response:
    return json_response({"value": [{"id": f"/tenants/{TENANT}", "tenantId": TENANT, "tenantCategory": "Home",
                                     "countryCode": "US", "displayName": "vnetlab", "domains": ["vnetlab.local"],
                                     "defaultDomain": "vnetlab.local", "tenantType": "AAD"}]})


def location_doc(sub: str, region: tuple) -> dict:
    name, display, geo, physical, lat, lon, paired = region
    return {"id": f"/subscriptions/{sub}/locations/{name}", "name": name, "type": "Region",
            "displayName": display, "regionalDisplayName": f"({geo}) {display}",
            "metadata": {"regionType": "Physical", "regionCategory": "Recommended", "geographyGroup": geo,
                         "longitude": lon, "latitude": lat, "physicalLocation": physical,
                         "pairedRegion": [{"name": paired, "id": f"/subscriptions/{sub}/locations/{paired}"}]}}


def list_locations(call: Call) -> Response:
    return json_response({"value": [location_doc(call.subscription, r) for r in _REGIONS]})


def list_service_tags(call: Call) -> Response:
    """GET .../providers/Microsoft.Network/locations/{loc}/serviceTags: the service tags the lab knows,
    with the lab's addresses for them (engine.security.PLATFORM_TAGS); az checks a rule's
    --service-tag against it. https://learn.microsoft.com/rest/api/virtualnetwork/service-tags/list"""
    from ..engine.security import PLATFORM_TAGS
    sub = call.subscription
    values = [{"name": tag, "id": tag, "serviceTagChangeNumber": "1",
               "properties": {"changeNumber": "1", "region": "", "state": "GA",
                              "systemService": tag.split(".")[0],
                              "addressPrefixes": [str(net) for net in nets], "networkFeatures": ["NSG"]}}
              for tag, nets in PLATFORM_TAGS.items()]
    return json_response({"name": "Public", "id": f"/subscriptions/{sub}/providers/Microsoft.Network/serviceTags/"
                          "Public", "type": "Microsoft.Network/serviceTags", "changeNumber": "1", "cloud": "Public",
                          "values": values})


# -- resource providers ----------------------------------------------------------------------

_PROVIDERS = {
    "Microsoft.Resources": ["resourceGroups", "subscriptions", "locations", "providers"],
    "Microsoft.Network": ["virtualNetworks", "virtualNetworks/subnets", "virtualNetworks/virtualNetworkPeerings",
                          "networkSecurityGroups", "networkSecurityGroups/securityRules", "routeTables",
                          "routeTables/routes", "networkInterfaces", "networkWatchers", "privateEndpoints",
                          "privateEndpoints/privateDnsZoneGroups", "privateDnsZones",
                          "privateDnsZones/virtualNetworkLinks", "privateDnsZones/A", "privateDnsZones/CNAME",
                          "privateDnsZones/ALL", "publicIPAddresses", "publicIPPrefixes",
                          "natGateways", "locations/serviceTags"],
    "Microsoft.Compute": ["virtualMachines"],
    "Microsoft.Web": ["serverfarms", "sites", "sites/config", "sites/networkConfig", "checknameavailability",
                      "webAppStacks"],
    "Microsoft.Storage": ["storageAccounts", "checkNameAvailability"],
    "Microsoft.Sql": ["servers", "servers/firewallRules", "servers/virtualNetworkRules"],
    "Microsoft.KeyVault": ["vaults"],
}
# global resource types (no region)
_GLOBAL_TYPES = {"privateDnsZones", "checknameavailability", "checkNameAvailability", "webAppStacks"}
_API_VERSIONS = {"Microsoft.Resources": ["2025-04-01", "2024-11-01", "2022-12-01"],
                 "Microsoft.Network": ["2026-03-01", "2025-07-01", "2024-07-01", "2023-11-01", "2022-01-01"],
                 "Microsoft.Compute": ["2024-07-01", "2023-09-01"],
                 "Microsoft.Web": ["2025-05-01", "2025-03-01", "2024-11-01", "2023-12-01"],
                 # what az 2.91 and the azure-mgmt-* SDKs send (any version is accepted)
                 "Microsoft.Storage": ["2025-08-01", "2025-06-01", "2025-01-01", "2023-05-01"],
                 "Microsoft.Sql": ["2024-11-01-preview", "2023-08-01", "2021-11-01"],
                 "Microsoft.KeyVault": ["2026-02-01", "2025-05-01", "2024-11-01", "2023-07-01"]}
# Private DNS is its own RP inside Microsoft.Network, with its own versions (az sends 2018-09-01 and 2024-06-01)
_PRIVATE_DNS_VERSIONS = ["2024-06-01", "2020-06-01", "2018-09-01"]


def provider_doc(sub: str | None, namespace: str) -> dict | None:
    canon = next((ns for ns in _PROVIDERS if ns.lower() == namespace.lower()), None)
    if canon is None:
        return None
    regions = [r[1] for r in _REGIONS]
    types = [{"resourceType": t, "locations": [] if "/" in t or t in _GLOBAL_TYPES else regions,
              "apiVersions": _PRIVATE_DNS_VERSIONS if t.startswith("privateDnsZones") else _API_VERSIONS[canon],
              "capabilities": "None"}
             for t in _PROVIDERS[canon]]
    doc = {"id": f"/subscriptions/{sub}/providers/{canon}" if sub else f"/providers/{canon}",
           "namespace": canon, "resourceTypes": types}
    if sub:
        doc.update(registrationState="Registered", registrationPolicy="RegistrationRequired")
    return doc


def get_provider(call: Call) -> Response:
    doc = provider_doc(call.subscription if "sub" in call.params else None, call.params["ns"])
    if doc is None:
        raise ArmError(404, "InvalidResourceNamespace",
                       f"The resource namespace '{call.params['ns']}' is invalid.")
    return json_response(doc)


def list_providers(call: Call) -> Response:
    sub = call.subscription if "sub" in call.params else None
    return json_response({"value": [provider_doc(sub, ns) for ns in _PROVIDERS]})


_SITE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,58}[a-zA-Z0-9]$")


def check_name_availability(site_exists: Callable[[str], bool]):
    """POST /subscriptions/{sub}/providers/Microsoft.Web/checknameavailability {"name","type"}: az webapp
    create insists on it. https://learn.microsoft.com/rest/api/appservice/check-name-availability"""

    def handler(call: Call) -> Response:
        body = call.json()
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidRequestContent("The 'name' property is required.")
        if not _SITE_NAME.match(name):
            return json_response({"nameAvailable": False, "reason": "Invalid",
                                  "message": f"The name '{name}' is not valid: use 2 to 60 letters, digits and "
                                             "hyphens, starting and ending with a letter or digit."})
        if site_exists(name):
            return json_response({"nameAvailable": False, "reason": "AlreadyExists",
                                  "message": f"Hostname '{name}' already exists. Please select a different name."})
        return json_response({"nameAvailable": True})

    return handler


def router(require_token: str | None, site_exists: Callable[[str], bool] = lambda name: False) -> Router:
    r = Router()
    r.add("GET", "metadata/endpoints", metadata, auth=False)
    for prefix in ("{tenant}/v2.0", "{tenant}"):
        r.add("GET", f"{prefix}/.well-known/openid-configuration", openid_configuration, auth=False)
    token = token_endpoint(require_token)
    r.add("POST", "{tenant}/oauth2/v2.0/token", token, auth=False)
    r.add("POST", "{tenant}/oauth2/token", token, auth=False)
    r.add("GET", "tenants", list_tenants)
    r.add("GET", "subscriptions", list_subscriptions)
    r.add("GET", "subscriptions/{sub}", get_subscription)
    r.add("GET", "subscriptions/{sub}/locations", list_locations)
    r.add("GET", "subscriptions/{sub}/providers", list_providers)
    r.add("GET", "subscriptions/{sub}/providers/{ns}", get_provider)
    r.add("POST", "subscriptions/{sub}/providers/{ns}/register", get_provider)
    r.add("POST", "subscriptions/{sub}/providers/Microsoft.Web/checknameavailability",
          check_name_availability(site_exists))
    r.add("GET", "subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/serviceTags", list_service_tags)
    r.add("GET", "providers", list_providers)
    r.add("GET", "providers/{ns}", get_provider)
    return r


