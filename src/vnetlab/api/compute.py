"""Microsoft.Compute/virtualMachines: what the lab needs of a VM, its NIC and the services it
listens on. ARM has no word for the latter, so they travel in a tag, ``vnetlab-services``:
``"80/Tcp,443/Tcp"`` (a VM without it listens on nothing and answers TCP with a reset).
https://learn.microsoft.com/rest/api/compute/virtual-machines
"""

from __future__ import annotations

from ..model import Service, Topology, VirtualMachine
from . import images
from starlette.responses import Response

from .arm import Call, Router, bad_request, json_response, resource_response
from .network import NS as NETWORK
from .resource import TopLevel, envelope, location_of
from .state import LabState, Obj, check_ref_group, guid, parse_ref, require

SERVICES_TAG = "vnetlab-services"


def services_text(services: list[Service]) -> str:
    return ",".join(f"{s.port}/{s.protocol}" for s in services)


def parse_services(text: str, current: list[Service]) -> list[Service]:
    commands = {(s.port, s.protocol): s.command for s in current}
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        port, _, proto = part.partition("/")
        if not port.isdigit():
            raise bad_request(f"Tag {SERVICES_TAG} must list PORT/PROTOCOL pairs like '80/Tcp,53/Udp', "
                              f"not '{text}'.", "InvalidTagValue")
        service = Service(port=int(port), protocol=proto or "Tcp")
        out.append(service.model_copy(update={"command": commands.get((service.port, service.protocol))}))
    return out


def vm_wire(topo: Topology, vm: VirtualMachine) -> dict:
    rid = topo.id_of("virtual_machines", vm)
    tags = dict(vm.tags)
    if vm.services:
        tags[SERVICES_TAG] = services_text(vm.services)
    nic = topo.find("network_interfaces", vm.network_interface)
    nic_id = topo.id_of("network_interfaces", nic) if nic else None
    props = {"vmId": guid(rid), "hardwareProfile": {"vmSize": vm.vm_size},
             "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": True}}]},
             "provisioningState": "Succeeded"}
    return envelope(rid, vm.name, "Microsoft.Compute/virtualMachines", topo.location_of(vm), tags, props)


def vm_from_wire(topo: Topology, body: Obj, current: VirtualMachine | None, rg: str, name: str) -> VirtualMachine:
    props = body.obj("properties")
    nics = props.obj("networkProfile").objs("networkInterfaces")
    if not nics:
        raise bad_request(f"Virtual machine {name} must have a network interface in "
                          "properties.networkProfile.networkInterfaces.", "InvalidParameter")
    primary = next((n for n in nics if n.obj("properties").bool("primary")), nics[0])
    rid = require(primary.str("id"), f"{primary.path}.id")
    nic, nic_rg = parse_ref(rid, NETWORK, ("networkInterfaces",), f"{primary.path}.id", topo)
    check_ref_group(topo, "network_interfaces", nic, nic_rg, rid, f"{primary.path}.id")
    tags = dict(body.obj("tags").data)
    services = parse_services(tags.pop(SERVICES_TAG, ""), current.services if current else [])
    size = props.obj("hardwareProfile").str("vmSize") or (current.vm_size if current else "Standard_B1s")
    return VirtualMachine(name=name, resource_group=rg, tags=tags, network_interface=nic, vm_size=size,
                          services=services, power_state=current.power_state if current else "running",
                          location=location_of(body, "Microsoft.Compute/virtualMachines",
                                               current and topo.location_of(current)))


VMS = TopLevel("virtual_machines", "Microsoft.Compute", "virtualMachines", vm_wire, vm_from_wire)


POWER_DISPLAY = {"running": "VM running", "stopped": "VM stopped", "deallocated": "VM deallocated"}


def instance_view(vm: VirtualMachine) -> dict:
    """What ``$expand=instanceView`` adds: the VM's power state (running once it exists, as ``az vm
    create`` prints it; then as ``az vm stop/deallocate/start`` leave it).
    https://learn.microsoft.com/rest/api/compute/virtual-machines/instance-view"""
    return {"computerName": vm.name, "osName": "ubuntu", "statuses": [
        {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
        {"code": f"PowerState/{vm.power_state}", "level": "Info", "displayStatus": POWER_DISPLAY[vm.power_state]}]}


# POST virtualMachines/{vm}/ACTION -> the VirtualMachine method it calls
# https://learn.microsoft.com/rest/api/compute/virtual-machines/deallocate (and start, power-off)
POWER_ACTIONS = {"start": "start", "powerOff": "power_off", "deallocate": "deallocate"}


def get_vm(state: LabState, call: Call) -> Response:
    topo, vm = VMS.lookup(state, call)
    wire = vm_wire(topo, vm)
    if "instanceview" in call.request.query_params.get("$expand", "").lower():
        wire["properties"]["instanceView"] = instance_view(vm)
    return resource_response(wire)


def get_instance_view(state: LabState, call: Call) -> Response:
    return json_response(instance_view(VMS.lookup(state, call)[1]))


def router(state: LabState) -> Router:
    r = Router()
    vm = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
    r.add("GET", vm, lambda call: get_vm(state, call))  # before the generic GET: it knows $expand
    r.add("GET", f"{vm}/instanceView", lambda call: get_instance_view(state, call))
    for action, method in POWER_ACTIONS.items():
        r.add("POST", f"{vm}/{action}", VMS.action(state, method), blocking=True)
    VMS.register(r, state)
    r.include(images.router())
    return r
