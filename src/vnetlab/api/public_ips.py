"""Microsoft.Network/publicIPAddresses: not modelled, so every list is empty and there is no PUT
(a template with one fails its preflight). ``az vm list-ip-addresses`` lists them beside the NICs, and ``az vm
create`` deploys one unless it is given ``--public-ip-address ""``.
https://learn.microsoft.com/rest/api/virtualnetwork/public-ip-addresses
"""

from __future__ import annotations

from starlette.responses import Response

from ..model.errors import ResourceNotFound
from .arm import Call, Router, list_response
from .state import LabState, require_group

TYPE = "Microsoft.Network/publicIPAddresses"


def router(state: LabState) -> Router:
    def list_all(call: Call) -> Response:
        return list_response([])

    def list_group(call: Call) -> Response:
        require_group(state.read(), call.params["rg"])
        return list_response([])

    def get(call: Call) -> Response:
        rg = require_group(state.read(), call.params["rg"])
        raise ResourceNotFound(type=TYPE, name=call.params["name"], group=rg)

    r = Router()
    base = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Network/publicIPAddresses"
    r.add("GET", "subscriptions/{sub}/providers/Microsoft.Network/publicIPAddresses", list_all)
    r.add("GET", base, list_group)
    r.add("GET", f"{base}/{{name}}", get)
    return r
