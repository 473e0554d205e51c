"""``vnetlab az-setup``: point the az CLI at the lab's ARM endpoint.

The script registers vnetlab as an az cloud, makes it active and logs in with a service
principal against vnetlab's own token endpoint, all inside a private AZURE_CONFIG_DIR so that
``~/.azure`` is never touched. Source it (``source <(vnetlab az-setup)``) so that the exported
variables reach the calling shell. What each step needs was found by experiment with az 2.91:
https://learn.microsoft.com/cli/azure/manage-clouds-azure-cli
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .discovery import AUDIENCE, CLIENT_ID, GRAPH, TENANT

CLOUD = "vnetlab"


def az_env(ca_pem: str | os.PathLike, config_dir: str | os.PathLike) -> dict[str, str]:
    """The environment every az call against vnetlab needs."""
    return {
        "AZURE_CONFIG_DIR": str(config_dir),
        # covers MSAL and ARM traffic alike; SSL_CERT_FILE does not (requests uses certifi)
        "REQUESTS_CA_BUNDLE": str(ca_pem),
        # otherwise MSAL validates the authority at login.microsoftonline.com
        "AZURE_CORE_INSTANCE_DISCOVERY": "false",
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
        # no "Selecting <region> may reduce your costs" advice on every create
        "AZURE_CORE_DISPLAY_REGION_IDENTIFIED": "false",
    }


def az_setup_script(base_url: str, ca_pem: str | os.PathLike, config_dir: str | os.PathLike, az_bin: str = "az",
                    *, client_id: str = CLIENT_ID, secret: str = "vnetlab", tenant: str = TENANT) -> str:
    """A bash script (meant to be sourced) that sets up az for the endpoint at ``base_url``.
    ``secret`` must be the server's --require-token when it has one."""
    base = base_url.rstrip("/")
    q = shlex.quote
    az = q(az_bin)
    endpoints = (f"--endpoint-resource-manager {q(base + '/')} --endpoint-active-directory {q(base)} "
                 f"--endpoint-active-directory-resource-id {q(AUDIENCE)} "
                 f"--endpoint-active-directory-graph-resource-id {q(GRAPH)}")
    exports = "\n".join(f"export {k}={q(v)}" for k, v in az_env(ca_pem, config_dir).items())
    return f"""# vnetlab: point the az CLI at {base}/
# Source this script (source <(vnetlab az-setup)) so that the exports reach your shell.
{exports}
mkdir -p "$AZURE_CONFIG_DIR"
# register the cloud (or update it, when a previous run registered it), make it active, log in
_vnetlab_az_setup() {{
  local verb=register
  if {az} cloud show --name {CLOUD} --output none 2>/dev/null; then verb=update; fi
  {az} cloud "$verb" --name {CLOUD} {endpoints} --output none \\
    && {az} cloud set --name {CLOUD} --output none \\
    && {az} login --service-principal --username {q(client_id)} --password {q(secret)} --tenant {q(tenant)} \\
         --output none \\
    && echo "az is logged in to vnetlab at {base}/ (config in $AZURE_CONFIG_DIR)" >&2
}}
_vnetlab_az_setup
"""


def az_setup_for(home: str | os.PathLike, host: str = "127.0.0.1", port: int = 8443, az_bin: str = "az",
                 require_token: str | None = None) -> str:
    """The script for the lab at ``home`` served by ``vnetlab serve`` (its CA, a config dir in the lab)."""
    from .tls import ensure_tls

    home = Path(home).resolve()
    shown = f"[{host}]" if ":" in host else host
    return az_setup_script(f"https://{shown}:{port}", ensure_tls(home).ca, home / "azure", az_bin,
                           secret=require_token or "vnetlab")
