"""vnetlab speaks ARM: a local HTTPS endpoint that the Azure SDK for Python and the az CLI drive.

    vnetlab serve            -> vnetlab.api.serve(home, host, port, backend, require_token)
    vnetlab az-setup         -> vnetlab.api.az_setup_for(home, host, port, az_bin, require_token)
                                (or az_setup_script(base_url, ca_pem, config_dir, az_bin))

Exports are imported lazily so that the CLI does not load FastAPI and uvicorn for other commands.
"""

from __future__ import annotations

_EXPORTS = {
    "create_app": "app",
    "serve": "server",
    "ServerThread": "server",
    "ensure_tls": "tls",
    "tls_files": "tls",
    "az_setup_script": "azsetup",
    "az_setup_for": "azsetup",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
