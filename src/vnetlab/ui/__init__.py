"""The web page: the lab's picture, resources, traces and the matrix, read-only.

``/`` serves ``static/index.html`` (plain HTML, CSS and a little JavaScript from the package, no
build step); ``/ui/api/...`` answers JSON (and the SVG picture) by calling the lab's verbs and the
engine, never deciding anything itself. ``vnetlab serve`` mounts it beside the ARM endpoint;
``vnetlab ui`` serves it alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..engine.security import flow_protocol
from ..lab import Lab
from ..model import AzureError
from ..model.ids import TYPES

PICTURED = ("storage_accounts", "sql_servers", "key_vaults", "private_dns_zones", "nat_gateways",
            "virtual_network_gateways")   # drawn as LIST:NAME

STATIC = Path(__file__).parent / "static"
FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


def routes(get_lab: Callable[[], Lab]) -> list[Route]:
    """The page's routes over the lab ``get_lab()`` returns."""

    def answer(fn):
        async def endpoint(request: Request) -> Response:
            try:
                result = await run_in_threadpool(fn, get_lab(), request.query_params)
            except AzureError as exc:
                return JSONResponse({"error": {"code": exc.code, "message": exc.message}},
                                    status_code=getattr(exc, "status", 400) or 400)
            return result if isinstance(result, Response) else JSONResponse(result)
        return endpoint

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in FILES:
            return Response("not found", status_code=404)
        return FileResponse(STATIC / name, media_type=FILES[name], headers={"Cache-Control": "no-cache"})

    return [Route("/", page, methods=["GET"]), Route("/ui/static/{name}", page, methods=["GET"]),
            Route("/ui/api/version", answer(version), methods=["GET"]),
            Route("/ui/api/endpoints", answer(endpoints), methods=["GET"]),
            Route("/ui/api/graph.svg", answer(picture), methods=["GET"]),
            Route("/ui/api/resource", answer(resource), methods=["GET"]),
            Route("/ui/api/trace", answer(trace), methods=["GET"]),
            Route("/ui/api/matrix", answer(matrix), methods=["GET"])]


def page_app(lab: Lab):
    """The page alone (``vnetlab ui``): an ASGI app with only these routes."""
    from fastapi import FastAPI
    app = FastAPI(title="vnetlab", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.routes.extend(routes(lambda: lab))
    return app


def version(lab: Lab, _query) -> dict:
    return {"version": lab.store.version(), "lab": lab.snapshot().name}


def endpoints(lab: Lab, _query) -> dict:
    net = lab.network()
    return {"endpoints": [{"name": ep.name, "kind": ep.kind, "ip": str(ep.ip)} for ep in net.endpoints()],
            "internet": [{"name": h.name, "ip": h.ip} for h in net.topo.internet_hosts]}


def _trace_dict(lab: Lab, query) -> dict | None:
    src, dst = query.get("src"), query.get("dst")
    if not src or not dst:
        return None
    protocol = flow_protocol(query.get("protocol") or "Tcp")
    port = int(query["port"]) if (query.get("port") or "").isdigit() else (None if protocol == "Icmp" else 80)
    return lab.trace(src, dst, port, protocol).to_dict()


def picture(lab: Lab, query) -> Response:
    from ..graph import draw
    return Response(draw(lab.network(), "svg", _trace_dict(lab, query), legend=False), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-cache"})


def trace(lab: Lab, query) -> dict:
    result = _trace_dict(lab, query)
    if result is None:
        raise AzureError("Give src and dst.", "InvalidArgument")
    from ..graph import step_text
    result["texts"] = [step_text(s) for s in result["steps"] + result["return_path"]]
    return result


def matrix(lab: Lab, query) -> dict:
    ports = [p.strip() for p in (query.get("ports") or "22,80,443").split(",") if p.strip()]
    return lab.matrix(ports)


def resource(lab: Lab, query) -> dict:
    """A resource the picture draws (``ref`` = ``subnet:VNET/SUBNET``, ``nic:NAME``, ``app:NAME`` or a PaaS
    service or private DNS zone as ``LIST:NAME``, e.g. ``storage_accounts:acct1``): its
    properties, the effective routes where it sits, and the NSG rules that apply to it."""
    kind, _, name = (query.get("ref") or "").partition(":")
    net = lab.network()
    topo = net.topo
    if kind == "subnet" and net.subnets.get(name.lower()):
        view = net.subnet_view(name)
        return {"type": "Microsoft.Network/virtualNetworks/subnets", "name": view.ref, "id": view.id,
                "properties": view.subnet.model_dump(mode="json"), "effective_routes": [r.to_dict() for r in view.routes],
                "nsg_rules": _nsg_rules(topo, [view.subnet.network_security_group])}
    nic = topo.find("network_interfaces", name) if kind == "nic" else None
    if nic is not None:
        vm = topo.vm_of_nic(nic.name)
        view = net.subnet_view(nic.subnet)
        props = {"network_interface": nic.model_dump(mode="json"),
                 "virtual_machine": vm.model_dump(mode="json") if vm else None}
        return {"type": "Microsoft.Compute/virtualMachines" if vm else "Microsoft.Network/networkInterfaces",
                "name": vm.name if vm else nic.name, "id": topo.id_of("virtual_machines", vm) if vm else
                topo.id_of("network_interfaces", nic), "properties": props,
                "effective_routes": [r.to_dict() for r in view.routes],
                "nsg_rules": _nsg_rules(topo, [nic.network_security_group, view.subnet.network_security_group])}
    app = topo.find("web_apps", name) if kind == "app" else None
    if app is not None:
        sb = net.sandbox(app)
        return {"type": "Microsoft.Web/sites", "name": app.name, "id": topo.id_of("web_apps", app),
                "properties": {**app.model_dump(mode="json"), "route_all_effective": app.route_all,
                               "outbound_ip_address": str(sb.outbound_ip)},
                "kernel_routes": sb.route_n(), "nsg_rules": []}
    other = topo.find(kind, name) if kind in PICTURED else None
    if other is not None:
        return {"type": "/".join(TYPES[kind]), "name": other.name, "id": topo.id_of(kind, other),
                "properties": other.model_dump(mode="json"), "nsg_rules": []}
    raise AzureError(f"No resource '{name}' of kind '{kind}' in the lab.", "ResourceNotFound", 404)


def _nsg_rules(topo, names: list[str | None]) -> list[dict]:
    out = []
    for name in names:
        nsg = topo.find("network_security_groups", name) if name else None
        if nsg is not None:
            out += [{"nsg": nsg.name, **r.model_dump(mode="json", exclude_defaults=True)} for r in nsg.security_rules]
    return out
