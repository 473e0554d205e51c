"""The answer to "can A reach B?": an explained trace, hop by hop, in Azure's words.

A trace walks the packet the way Azure's SDN would: the source's kernel route (for a web
app, its sandbox table), SNAT at the integration, the outbound NSGs (NIC then subnet), the
subnet's effective route, across a peering or through a network virtual appliance, the
destination's inbound NSGs (subnet then NIC), and what the destination host does with it.
The return path is walked too: replies need a route back to the address the destination saw.

Verdicts are what a real client sees: ``Connected`` (handshake or echo reply), ``Refused``
(TCP reset or ICMP port unreachable), ``TimedOut`` (silently dropped), ``Denied`` (the connection
opened and a PaaS service refused it with its own error); each trace ends with one
:class:`Reason`, which carries its verdict.

A PaaS service is reached at its public address (through the internet route, or a subnet's
service endpoint route: then it sees the private address and the subnet) or at a private
endpoint's address; its admission step (``engine.paas.admit``) says which rule admitted or
which error refused. Each step has a kind, an action and one typed detail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from ipaddress import IPv4Address

from ..model import AzureError, NetworkInterface, Topology
from ..model.errors import InvalidPort, SubnetIsFull
from . import gateways, paas
from .network import Endpoint, LabView, SubnetView, integration_inbound_refused
from .outbound import Egress, app_egress, nic_egress
from .addressing import LAB_PUBLIC_NET
from .security import PLATFORM_RANGE, flow_protocol, is_public, nsg_chain

MAX_APPLIANCE_HOPS = 8


class Verdict(StrEnum):
    """What a real client sees."""
    CONNECTED = "Connected"   # handshake or echo reply
    REFUSED = "Refused"       # TCP reset or ICMP port unreachable
    TIMED_OUT = "TimedOut"    # silently dropped
    NOT_RESOLVED = "NotResolved"  # the destination's name did not resolve: no connection was tried
    DENIED = "Denied"         # the connection opened; the PaaS service refused it (its own error)


class Reason(StrEnum):
    """Why a trace ended, with the verdict a client sees and the explanation shown to the user."""

    def __new__(cls, value: str, verdict: Verdict, explanation: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.verdict = verdict
        member.explanation = explanation
        return member

    REACHABLE = "Reachable", Verdict.CONNECTED, "the destination answered"
    NO_LISTENER = ("NoListener", Verdict.REFUSED,
                   "nothing listens on that port: the host answered with a reset (ICMP port unreachable for UDP)")
    INTEGRATION_INBOUND_REFUSED = ("IntegrationInboundRefused", Verdict.REFUSED,
                                   "VNet integration is outbound only: TCP to an integration address is reset")
    INTEGRATION_INBOUND_NOT_ANSWERED = ("IntegrationInboundNotAnswered", Verdict.TIMED_OUT,
                                        "VNet integration is outbound only: the integration address does not answer")
    NSG_DENIED = "NsgDenied", Verdict.TIMED_OUT, "a network security group rule denied the flow"
    ROUTE_NONE = "RouteNone", Verdict.TIMED_OUT, "the effective route's next hop is None: Azure drops the packet"
    NO_OUTBOUND_ACCESS = ("NoOutboundAccess", Verdict.TIMED_OUT,
                          "the subnet is private (default outbound access off) and the source has neither a NAT "
                          "gateway nor a public IP: it has no internet path")
    NAT_GATEWAY_NO_ICMP = ("NatGatewayNoIcmp", Verdict.TIMED_OUT,
                           "a NAT gateway translates TCP and UDP only: an ICMP packet to the internet is dropped")
    NAT_GATEWAY_INBOUND_REFUSED = ("NatGatewayInboundRefused", Verdict.REFUSED,
                                   "a NAT gateway is outbound only: it answers a TCP flow it did not start with a "
                                   "reset")
    NAT_GATEWAY_INBOUND_NOT_ANSWERED = ("NatGatewayInboundNotAnswered", Verdict.TIMED_OUT,
                                        "a NAT gateway is outbound only: nothing answers a flow it did not start")
    PRIVATE_ADDRESS_ON_INTERNET = ("PrivateAddressOnInternet", Verdict.TIMED_OUT,
                                   "a private destination was sent to the internet, where nothing routes it")
    NO_HOST_AT_DESTINATION = "NoHostAtDestination", Verdict.TIMED_OUT, "no host holds the destination address"
    VM_NOT_RUNNING = ("VmNotRunning", Verdict.TIMED_OUT,
                      "the VM holding the address is stopped or deallocated: nothing runs on it to answer or forward")
    NEXT_HOP_UNREACHABLE = ("NextHopUnreachable", Verdict.TIMED_OUT,
                            "no network interface holds the route's next hop address")
    NEXT_HOP_NOT_FORWARDING = ("NextHopNotForwarding", Verdict.TIMED_OUT,
                               "the next hop's network interface does not have IP forwarding enabled")
    GUEST_NOT_FORWARDING = ("GuestNotForwarding", Verdict.TIMED_OUT,
                            "the next hop VM's operating system does not forward (guest_ip_forwarding is false)")
    FORWARDED_TRAFFIC_NOT_ALLOWED = ("ForwardedTrafficNotAllowed", Verdict.TIMED_OUT,
                                     "the peering does not allow forwarded traffic")
    PEERING_ACCESS_DISABLED = ("PeeringAccessDisabled", Verdict.TIMED_OUT,
                               "the peering does not allow virtual network access")
    NO_GATEWAY = ("NoGateway", Verdict.TIMED_OUT,
                  "the route points to a virtual network gateway, which the lab does not have")
    GATEWAY_NO_ROUTE = ("GatewayNoRoute", Verdict.TIMED_OUT,
                        "the virtual network gateway has no connection whose local network gateway holds the "
                        "destination (static routing; forced tunneling to a default site is not modelled)")
    CONNECTION_NOT_CONNECTED = ("ConnectionNotConnected", Verdict.TIMED_OUT,
                                "the gateway's connection to the site is not Connected: no device of the lab answers "
                                "at the local network gateway's address, or the shared keys differ")
    ON_PREMISES_NO_ROUTE = ("OnPremisesNoRoute", Verdict.TIMED_OUT,
                            "the on-premises site has no VPN connection to a gateway whose virtual networks hold the "
                            "destination")
    ROUTING_LOOP = "RoutingLoop", Verdict.TIMED_OUT, "the packet went through too many appliances"
    RETURN_PATH_DROPPED = ("ReturnPathDropped", Verdict.TIMED_OUT,
                           "the destination's reply has no route back to the address it saw")
    NAME_NOT_FOUND = ("NameNotFound", Verdict.NOT_RESOLVED,
                      "the source's DNS server answered that the name does not exist (NXDOMAIN)")
    NO_DNS_ANSWER = ("NoDnsAnswer", Verdict.NOT_RESOLVED, "no DNS server of the source answered for the name")
    PRIVATE_ENDPOINT_NOT_APPROVED = ("PrivateEndpointNotApproved", Verdict.TIMED_OUT,
                                     "the private endpoint's connection is not Approved (Pending, Rejected or "
                                     "Disconnected): it passes no traffic")
    SERVICE_PORT_NOT_SERVED = ("ServicePortNotServed", Verdict.TIMED_OUT,
                               "the PaaS service does not serve that protocol or port: nothing answers")
    PUBLIC_NETWORK_ACCESS_DISABLED = ("PublicNetworkAccessDisabled", Verdict.DENIED,
                                      "the service's public network access is disabled: only its private "
                                      "endpoints admit connections")
    SERVICE_FIREWALL_DENIED = ("ServiceFirewallDenied", Verdict.DENIED,
                               "the service's firewall has no rule that admits the source it saw")
    ACCESS_RESTRICTION_DENIED = ("AccessRestrictionDenied", Verdict.DENIED,
                                 "the web app's access restrictions did not admit the source: 403 Ip Forbidden")
    WEB_APP_STOPPED = ("WebAppStopped", Verdict.DENIED,
                       "the web app is stopped: its front end answers 403 Site Disabled, \"Error 403 - This web app "
                       "is stopped.\" (az webapp start starts it)")
    SQL_SERVER_NAME_NOT_DETERMINED = ("SqlServerNameNotDetermined", Verdict.DENIED,
                                      "the SQL gateway routes a login by <server>.database.windows.net only: the "
                                      "private link name (or another alias) fails")


class StepKind(StrEnum):
    KERNEL_ROUTE = "KernelRoute"
    SNAT = "SNAT"
    DNAT = "DNAT"
    NSG = "NetworkSecurityGroup"
    ROUTE = "Route"
    PEERING = "VNetPeering"
    APPLIANCE = "VirtualAppliance"
    GATEWAY = "VirtualNetworkGateway"
    INTERNET = "Internet"
    DELIVER = "Deliver"
    RESOLUTION = "Resolution"
    ADMISSION = "Admission"


class Action(StrEnum):
    FORWARDED = "Forwarded"
    TRANSLATED = "Translated"
    ALLOWED = "Allowed"
    DENIED = "Denied"
    DROPPED = "Dropped"
    ANSWERED = "Answered"
    RESET = "Reset"


# -- one detail per step kind ---------------------------------------------------------------------
class Detail:
    """A step's detail; ``to_dict`` names a field ``from_`` as ``from`` and leaves out optional
    fields (default None) that are not set."""
    kind: StepKind

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name.rstrip("_")] = value
        return out


@dataclass(frozen=True)
class KernelRouteDetail(Detail):
    """The web app sandbox's own kernel route (``route -n``)."""
    kind = StepKind.KERNEL_ROUTE
    sandbox: str
    instance: int
    route: str
    gateway: str | None
    iface: str


@dataclass(frozen=True)
class SnatDetail(Detail):
    """``idle_timeout_in_minutes``: a NAT gateway's TCP idle timeout, after which it forgets the flow."""
    kind = StepKind.SNAT
    from_: str
    to: str
    why: str
    idle_timeout_in_minutes: int | None = None


@dataclass(frozen=True)
class DnatDetail(Detail):
    """Inbound to an instance-level public IP: Azure delivers it to the private address of the IP
    configuration holding the public IP (the VM sees the internet source)."""
    kind = StepKind.DNAT
    from_: str
    to: str
    public_ip_address: str
    network_interface: str
    ip_configuration: str
    why: str


@dataclass(frozen=True)
class NsgDetail(Detail):
    kind = StepKind.NSG
    nsg: str
    attached_to: str
    direction: str
    rule: str
    priority: int
    access: str
    default_rule: bool


@dataclass(frozen=True)
class RouteDetail(Detail):
    """The subnet's effective route for the packet."""
    kind = StepKind.ROUTE
    subnet: str
    address_prefix: str
    source: str
    next_hop_type: str
    next_hop_ip: str | None
    route_name: str | None
    route_table: str | None


@dataclass(frozen=True)
class PeeringDetail(Detail):
    kind = StepKind.PEERING
    from_vnet: str
    to_vnet: str
    peering: str
    forwarded: bool | None = None   # set when forwarded traffic is what the peering refused


@dataclass(frozen=True)
class ApplianceDetail(Detail):
    """The appliance's two forwarding settings: Azure's on the NIC, and the guest OS's."""
    kind = StepKind.APPLIANCE
    network_interface: str
    ip: str
    enable_ip_forwarding: bool
    guest_ip_forwarding: bool


@dataclass(frozen=True)
class GatewayDetail(Detail):
    """The VPN gateway and the IPsec connection the packet crosses (``direction``: ToOnPremises or
    FromOnPremises)."""
    kind = StepKind.GATEWAY
    gateway: str
    vnet: str
    direction: str
    connection: str | None = None
    connection_status: str | None = None
    local_network_gateway: str | None = None
    why: str | None = None


@dataclass(frozen=True)
class InternetDetail(Detail):
    kind = StepKind.INTERNET
    destination: str
    why: str


@dataclass(frozen=True)
class DeliverDetail(Detail):
    """Who holds the destination address: a VM, a web app's integration address, an internet host, or nobody."""
    kind = StepKind.DELIVER
    ip: str
    virtual_machine: str | None = None
    ip_configuration: str | None = None   # the VM's NIC's IP configuration holding ``ip``
    source_seen: str | None = None
    web_app: str | None = None
    instance: int | None = None
    host: str | None = None
    internet: bool | None = None
    on_premises_site: str | None = None
    vnet: str | None = None
    why: str | None = None


@dataclass(frozen=True)
class ResolutionDetail(Detail):
    """One step of the destination name's resolution (engine.dns), before the packet leaves."""
    kind = StepKind.RESOLUTION
    step: str                      # the resolution step's kind (Query, LinkedZone, PublicRecord, ...)
    text: str
    name: str | None = None
    server: str | None = None
    zone: str | None = None
    link: str | None = None
    vnet: str | None = None
    record: str | None = None


@dataclass(frozen=True)
class AdmissionDetail(Detail):
    """What a PaaS service did with the connection: the rule that admitted it, or its error."""
    kind = StepKind.ADMISSION
    service: str                    # storage account | SQL server | key vault | web app
    resource: str
    endpoint: str                   # public | private endpoint NAME
    ip: str
    source_seen: str
    allowed: bool
    rule: str
    source_subnet: str | None = None    # the client subnet, when its service endpoint carried the flow
    code: str | None = None
    http_status: int | None = None
    text: str | None = None


@dataclass
class Step:
    resource_id: str | None
    action: Action
    detail: Detail
    dropped: bool = False

    @property
    def kind(self) -> StepKind:
        return self.detail.kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "resource_id": self.resource_id, "action": self.action, "dropped": self.dropped,
                **self.detail.to_dict()}


@dataclass
class Flow:
    source: str
    source_kind: str
    source_ip: str
    destination: str
    destination_ip: str | None    # None when the destination's name did not resolve
    protocol: str
    port: int | None

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass(slots=True)
class Packet:
    src: IPv4Address
    dst: IPv4Address
    protocol: str
    port: int | None
    public_src: IPv4Address | None = None   # the address used if the packet leaves to the internet
    nic: NetworkInterface | None = None     # the NIC it leaves from (a VM's, an appliance's); None: an app
    origin_vnet: str | None = None          # where the packet entered Azure's SDN
    origin_region: str | None = None        # the source's Azure region
    public_dst: IPv4Address | None = None   # the instance-level public IP it was sent to (before DNAT)


@dataclass
class Trace:
    flow: Flow | None
    steps: list[Step] = field(default_factory=list)
    reason: Reason | None = None
    source_ip_seen: str | None = None
    return_path: list[Step] = field(default_factory=list)
    resolution: object | None = None   # the destination name's engine.dns.Resolution, when it was a name
    admission: paas.Admission | None = None   # set when a PaaS service took the connection
    explain: bool = True   # False: the walk decides without recording its steps (``verdict``)
    headers: dict[str, str] = field(default_factory=dict)   # the HTTP request's headers (a web app's rules)

    def step(self, make: Callable[[], Step], back: bool = False) -> None:
        """Record the step ``make`` builds (on the return path with ``back``), when the trace explains."""
        if self.explain:
            (self.return_path if back else self.steps).append(make())

    @property
    def verdict(self) -> Verdict:
        return self.reason.verdict

    def to_dict(self) -> dict:
        return {"flow": self.flow.to_dict(), "verdict": self.verdict, "reason": self.reason,
                "explanation": self.reason.explanation, "source_ip_seen": self.source_ip_seen,
                "steps": [s.to_dict() for s in self.steps], "return_path": [s.to_dict() for s in self.return_path],
                **({"resolution": self.resolution.to_dict()} if self.resolution is not None else {}),
                **({"admission": self.admission.to_dict()} if self.admission is not None else {}),
                **({"headers": dict(self.headers)} if self.headers else {})}


class _Done(Exception):
    """Ends the walk; ``reason`` must be one of :class:`Reason` (an unknown one is a ValueError)."""

    def __init__(self, reason: Reason):
        super().__init__(reason)
        self.reason = Reason(reason)


def trace(net: LabView | Topology, source: str, destination: str, port: int | None = None,
          protocol: str = "Tcp", headers: dict[str, str] | None = None, source_ip: str | None = None) -> Trace:
    """Can ``source`` reach ``destination``? ``source``: a VM, NIC, web app, internet host, or
    ``internet`` (a client on the internet: ``source_ip``, else the first internet host's address);
    ``headers``: the HTTP request's headers, which a web app's access restrictions may ask for."""
    net = net if isinstance(net, LabView) else LabView(net)
    protocol = flow_protocol(protocol)
    if protocol != "Icmp" and port is None:
        raise InvalidPort("A port is required for Tcp and Udp flows.")
    if port is not None and not 0 < port < 65536:
        raise InvalidPort(f"Port {port} is out of range 1-65535.")
    src = _source_endpoint(net, source, source_ip)
    _check_running(net, src)
    destination = _internet_destination(net, src, destination)
    resolution = _resolve_name(net, src, destination)
    if resolution is not None and resolution.outcome != "NoError":
        return _not_resolved(src, destination, protocol, port, resolution)
    dst_ip, dst_name = (IPv4Address(resolution.addresses[0]), destination) if resolution is not None \
        else net.destination_ip(destination)
    port = port if protocol != "Icmp" else None
    t = Trace(Flow(src.name, src.kind, str(src.ip), dst_name, str(dst_ip), protocol, port), headers=dict(headers or {}))
    if resolution is not None:
        t.resolution = resolution
        t.steps += _resolution_steps(resolution)
    pkt = _walk(net, src, dst_ip, protocol, port, t)
    if t.verdict in (Verdict.CONNECTED, Verdict.REFUSED, Verdict.DENIED):
        t.source_ip_seen = str(pkt.src)
    return t


def verdict(net: LabView, src: Endpoint, dst_ip: IPv4Address, port: int | None, protocol: str) -> Verdict:
    """``trace(net, src.name, str(dst_ip), port, protocol).verdict``: the same walk, without building
    its explanation (the matrix asks this for every pair of classes). ``protocol`` as
    :func:`flow_protocol` gives it, ``port`` valid for it (None for Icmp)."""
    _check_running(net, src)
    t = Trace(None, explain=False)
    _walk(net, src, dst_ip, protocol, port, t)
    return t.verdict


def _check_running(net: LabView, src: Endpoint) -> None:
    vm = net.vm_of_nic.get(src.nic.name.lower()) if src.nic is not None else None
    if vm is not None and not vm.running:
        # https://learn.microsoft.com/azure/virtual-machines/states-billing (code: vnetlab's choice)
        raise AzureError(f"The VM '{vm.name}' is {vm.power_state}: nothing runs on it, so it opens no connection. "
                         "Start it first (az vm start).", "VmNotRunning", 409)
    if src.kind == "webapp" and not src.app.running:
        # https://learn.microsoft.com/cli/azure/webapp#az-webapp-stop
        raise AzureError(f"The web app '{src.name}' is stopped: it runs no code, so it opens no connection. "
                         "Start it first (az webapp start).", "WebAppStopped", 409)


def _walk(net: LabView, src: Endpoint, dst_ip: IPv4Address, protocol: str, port: int | None, t: Trace) -> Packet:
    """The walk from ``src`` to ``dst_ip``: ``t`` gets its reason (and its steps, if it explains);
    returns the packet as it arrived."""
    pkt = Packet(src.ip, dst_ip, protocol, port)
    try:
        if src.kind == "webapp":
            _from_app(net, src, pkt, t)
        elif src.kind == "internet":
            _from_internet(net, pkt, t)
        elif src.kind == "onprem":
            _from_on_premises(net, src, pkt, t)
        else:
            _from_nic(net, src.nic, pkt, t)
    except _Done as done:
        t.reason = done.reason
    if t.reason is None:  # every walk ends in _Done: a path that does not is a bug, not a TimedOut
        raise RuntimeError(f"the trace of {t.flow or (src.name, str(dst_ip))} ended without a reason")
    return pkt


# -- a destination named by DNS --------------------------------------------------------------
_ANSWERING = {"LinkedZone", "PublicRecord", "OwnZone", "InternalName"}
_FAILING = {"LinkedZoneNxDomain", "PublicNxDomain", "NoAnswer"}


def _resolve_name(net: LabView, src: Endpoint, destination: str):
    """The resolution of ``destination`` when it is a DNS name (not an address, not a lab resource's
    name): what the source's resolver answers (engine.dns), before any packet leaves."""
    try:
        IPv4Address(destination)
        return None
    except ValueError:
        pass
    if "." not in destination or _is_lab_name(net, destination):
        return None
    from .dns import resolve, resolve_public
    if src.kind == "internet":
        return resolve_public(net, src.name, destination)
    return resolve(net, src.name, destination)


INTERNET = "internet"   # the source name of a client on the internet


def _source_endpoint(net: LabView, source: str, source_ip: str | None) -> Endpoint:
    """The flow's source; ``internet`` (or any source with ``source_ip``) is a client on the internet at
    ``source_ip`` (default: the first internet host's address), which must be a public address no
    resource of the lab holds."""
    if source_ip is None and source.lower() != INTERNET:
        return net.endpoint(source)
    if source_ip is None:
        if not net.topo.internet_hosts:
            raise AzureError("The lab has no internet host: give the client's public address (--from IP).",
                             "InvalidSource")  # vnetlab's code
        source_ip = net.topo.internet_hosts[0].ip
    if source.lower() != INTERNET:
        raise AzureError(f"A chosen source address (--from {source_ip}) is for the source 'internet', not "
                         f"'{source}'.", "InvalidSource")  # vnetlab's code
    try:
        ip = IPv4Address(source_ip)
    except ValueError:
        raise AzureError(f"'{source_ip}' is not an IPv4 address.", "InvalidSource") from None
    if int(ip) not in net.internet_at and _held_by_lab(net, ip):
        raise AzureError(f"{ip} is not an internet address: a client on the internet has a public address that no "
                         f"resource of the lab holds, outside {PLATFORM_RANGE} and {LAB_PUBLIC_NET} (for example "
                         "203.0.113.0/24; README, Public addresses of the lab).", "InvalidSource")  # vnetlab's code
    host = net.internet_at.get(int(ip))
    return Endpoint("internet", host.name if host is not None else f"{INTERNET} {ip}", ip)


def _held_by_lab(net: LabView, ip: IPv4Address) -> bool:
    """A private address, one of the lab's own public ranges, or a lab resource's outbound address."""
    return (not is_public(int(ip)) or ip in PLATFORM_RANGE or ip in LAB_PUBLIC_NET
            or ip in set(net.outbound.values()) or ip in set(net.default_outbound.values()))


def _internet_destination(net: LabView, src: Endpoint, destination: str) -> str:
    """A client on the internet names a web app by its default host name: the app's name becomes
    ``<app>.azurewebsites.net``, resolved by public DNS; a public IP by its address, and a VM (or NIC)
    with an instance-level public IP by that address."""
    if src.kind != "internet":
        return destination
    low = destination.lower()
    app = net.by_name["web_apps"].get(low)
    if app is not None:
        from .dns import fqdn_of
        return fqdn_of(net.topo, "web_apps", app.name)
    vm = net.by_name["virtual_machines"].get(low)
    nic = net.by_name["network_interfaces"].get(vm.network_interface.lower() if vm else low)
    pip = net.topo.find("public_ip_addresses", nic.public_ip_address if nic is not None else destination)
    return pip.ip_address if pip is not None and pip.ip_address else destination


def _is_lab_name(net: LabView, name: str) -> bool:
    """A VM, NIC or web app's own name, or an internet host's: not a DNS name."""
    low = name.lower()
    return any(low in net.by_name[kind] for kind in net.by_name) or \
        any(h.name.lower() == low for h in net.topo.internet_hosts) or \
        any(h.name.lower() == low for _, h in net.on_premises_at.values())


def _resolution_steps(resolution) -> list[Step]:
    out = []
    for r in resolution.steps:
        action = Action.ANSWERED if r.kind in _ANSWERING else Action.DROPPED if r.kind in _FAILING else Action.FORWARDED
        out.append(Step(None, action, ResolutionDetail(r.kind, r.text, r.name, r.server, r.zone, r.link, r.vnet,
                                                       r.record), dropped=action == Action.DROPPED))
    return out


def _not_resolved(src: Endpoint, destination: str, protocol: str, port: int | None, resolution) -> Trace:
    """The name did not resolve: the client never connects (NXDOMAIN, or no DNS answer)."""
    t = Trace(Flow(src.name, src.kind, str(src.ip), destination, None, protocol, port if protocol != "Icmp" else None))
    t.steps = _resolution_steps(resolution)
    t.resolution = resolution
    t.reason = Reason.NAME_NOT_FOUND if resolution.outcome == "NXDOMAIN" else Reason.NO_DNS_ANSWER
    return t


# -- sources ------------------------------------------------------------------------------
def _from_internet(net: LabView, pkt: Packet, t: Trace) -> None:
    """A client on the internet: it reaches public endpoints (PaaS services, web apps) and internet
    hosts; a private destination is not routed there."""
    pkt.public_src = pkt.src
    if not is_public(int(pkt.dst)):
        t.step(lambda: Step(None, Action.DROPPED, InternetDetail(str(pkt.dst), "private address on the internet"),
                            True))
        raise _Done(Reason.PRIVATE_ADDRESS_ON_INTERNET)
    _on_internet(net, pkt, t)


def _from_nic(net: LabView, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    view = net.subnet_view(nic.subnet)
    pkt.public_src, pkt.nic = net.public_ip("network_interfaces", nic.name), nic
    pkt.origin_vnet = view.vnet.name.lower()
    pkt.origin_region = net.topo.location_of(view.vnet)
    _outbound_nsgs(net, view, nic, pkt, t)
    _route_from(net, view, pkt, t, hops=0)


def _from_app(net: LabView, src: Endpoint, pkt: Packet, t: Trace) -> None:
    sb = net.sandbox(src.app)
    route = sb.lookup(pkt.dst)  # the sandbox always has a default route
    pkt.src = sb.interface(route.iface).ip  # the kernel's source: the address of the outgoing interface
    if t.explain:
        t.flow.source_ip = str(pkt.src)
    t.step(lambda: Step(net.topo.id_of("web_apps", src.app), Action.FORWARDED,
                        KernelRouteDetail(sb.app, sb.instance, route.destination, route.gateway, route.iface)))
    pkt.public_src = sb.outbound_ip
    pkt.origin_region = net.topo.location_of(src.app)
    if sb.vnet is None or route.iface != sb.vnet.name:
        _snat(t, pkt, sb.outbound_ip, "App Service public outbound address", None)
        _to_internet(net, pkt, t)
        return
    if sb.integration_ip is None:  # validation refuses a plan with more instances than the subnet has addresses
        raise SubnetIsFull(f"Subnet {sb.integration_subnet} has no address left for instance {sb.instance} "
                           f"of web app {sb.app}.")
    view = net.subnet_view(sb.integration_subnet)
    _snat(t, pkt, sb.integration_ip, "VNet integration: the instance's address in the integration subnet", view.id)
    pkt.origin_vnet = view.vnet.name.lower()
    # Only the integration subnet's NSG applies to the app: there is no customer NIC.
    _nsg_check(net, view.subnet.network_security_group, "Outbound", view, pkt, t, "subnet " + view.ref)
    _route_from(net, view, pkt, t, hops=0)


def _snat(t: Trace, pkt: Packet, to: IPv4Address, why: str, resource_id: str | None,
          idle_timeout: int | None = None) -> None:
    before = pkt.src
    t.step(lambda: Step(resource_id, Action.TRANSLATED, SnatDetail(str(before), str(to), why, idle_timeout)))
    pkt.src = to


# -- NSGs -----------------------------------------------------------------------------------
def _nsg_check(net: LabView, nsg_name: str | None, direction: str, view: SubnetView, pkt: Packet, t: Trace,
               attached_to: str) -> None:
    compiled = net.nsg(nsg_name, direction, view.vnet)
    if compiled is None:
        return
    hit = compiled.evaluate(pkt.protocol, pkt.src, pkt.dst, pkt.port)
    rule = hit.rule
    denied = rule.access == "Deny"
    if t.explain:  # (the matrix runs tens of thousands of walks that explain nothing)
        t.steps.append(Step(net.topo.id_of("network_security_groups", compiled.nsg),
                            Action.DENIED if denied else Action.ALLOWED,
                            NsgDetail(compiled.nsg.name, attached_to, direction, rule.name, rule.priority, rule.access,
                                      hit.default), denied))
    if denied:
        raise _Done(Reason.NSG_DENIED)


def _nsgs_at(net: LabView, direction: str, view: SubnetView, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    for where, name in nsg_chain(direction, nic.network_security_group, view.subnet.network_security_group):
        _nsg_check(net, name, direction, view, pkt, t, ("network interface " + nic.name if where == "nic"
                                                        else "subnet " + view.ref) if t.explain else "")


def _outbound_nsgs(net: LabView, view: SubnetView, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    _nsgs_at(net, "Outbound", view, nic, pkt, t)


def _inbound_nsgs(net: LabView, view: SubnetView, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    _nsgs_at(net, "Inbound", view, nic, pkt, t)


# -- routing ----------------------------------------------------------------------------------
def _route_step(view: SubnetView, route, t: Trace, dropped: bool = False, back: bool = False) -> None:
    if t.explain:
        (t.return_path if back else t.steps).append(Step(
            view.id, Action.DROPPED if dropped else Action.FORWARDED,
            RouteDetail(view.ref, route.address_prefix, route.source, route.next_hop_type, route.next_hop_ip,
                        route.name, route.route_table), dropped))


def _route_from(net: LabView, view: SubnetView, pkt: Packet, t: Trace, hops: int) -> None:
    route = view.route_for(pkt.dst)  # effective routes always hold 0.0.0.0/0
    kind = route.next_hop_type
    found = gateways.gateway_for(net.topo, view.vnet) if kind == "VirtualNetworkGateway" else None
    _route_step(view, route, t, dropped=kind == "None" or (kind == "VirtualNetworkGateway" and found is None))
    if kind == "None":
        raise _Done(Reason.ROUTE_NONE)
    if kind == "VirtualNetworkGateway":
        if found is None:
            raise _Done(Reason.NO_GATEWAY)
        _via_gateway(net, view, found, pkt, t)
    if kind == "Internet":
        _to_internet(net, pkt, t, view)
    elif kind == "VnetLocal":
        _deliver(net, view.vnet, pkt, t)
    elif kind == "VNetPeering":
        remote = _cross_peering(net, view, route.remote_virtual_network, pkt, t)
        _deliver(net, remote, pkt, t)
    elif kind == "VirtualAppliance":
        _via_appliance(net, view, route, pkt, t, hops)
    elif kind == "InterfaceEndpoint":
        _to_private_endpoint(net, view, pkt, t)
    elif kind == "VirtualNetworkServiceEndpoint":
        # the service sees the private address and the subnet's identity, not a public address
        # https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview
        _at_service(net, net.paas.public_at[int(pkt.dst)], pkt, t, view.id)


def _cross_peering(net: LabView, view: SubnetView, remote_name: str, pkt: Packet, t: Trace, transit: bool = False):
    """``transit``: to the remote VNet's gateway (gateway transit needs no forwarded-traffic setting)."""
    remote, local_peering = net.peers[view.vnet.name.lower()][remote_name.lower()]

    def step(action: Action, forwarded: bool | None = None) -> None:
        if t.explain:
            t.steps.append(Step(net.topo.id_of("virtual_networks", view.vnet, "virtualNetworkPeerings",
                                               local_peering.name),
                                action, PeeringDetail(view.vnet.name, remote.name, local_peering.name, forwarded),
                                action == Action.DROPPED))
    if not net.peering_open(view.vnet.name, remote.name):
        step(Action.DROPPED)
        raise _Done(Reason.PEERING_ACCESS_DISABLED)
    forwarded = pkt.origin_vnet != view.vnet.name.lower()
    if forwarded and not transit and not net.accepts_forwarded(remote.name, view.vnet.name):
        step(Action.DROPPED, True)
        raise _Done(Reason.FORWARDED_TRAFFIC_NOT_ALLOWED)
    step(Action.FORWARDED)
    return remote


def _holder_of(net: LabView, view: SubnetView, ip: IPv4Address):
    """The NIC holding ``ip`` in this VNet or a connected peer, with the VNet it is in."""
    return net.appliance_at(view, ip)


def _missing_forwarding(net: LabView, nic: NetworkInterface) -> Reason | None:
    """Which of the two settings an appliance needs is off: Azure's on the NIC (checked first:
    Azure drops before the guest sees the packet), then the guest OS's; a stopped or deallocated
    appliance forwards nothing."""
    if not _vm_running(net, nic):
        return Reason.VM_NOT_RUNNING
    if not net.accepts_transit(nic):
        return Reason.NEXT_HOP_NOT_FORWARDING
    if not net.guest_forwards(nic):
        return Reason.GUEST_NOT_FORWARDING
    return None


def _vm_running(net: LabView, nic: NetworkInterface) -> bool:
    vm = net.vm_of_nic.get(nic.name.lower())
    return vm is None or vm.running


def _via_appliance(net: LabView, view: SubnetView, route, pkt: Packet, t: Trace, hops: int) -> None:
    hop_ip = IPv4Address(route.next_hop_ip)
    nic, vnet = _holder_of(net, view, hop_ip)
    if hop_ip == pkt.dst or (nic is not None and nic.ip_configuration_at(pkt.dst)):
        # addressed to the appliance itself (any of its addresses): delivered, across the peering if it is in a peer
        if vnet is not None and vnet is not view.vnet:
            _cross_peering(net, view, vnet.name, pkt, t)
        _deliver(net, vnet or view.vnet, pkt, t)
        return
    if nic is None or net.services_of(nic) is None:
        raise _Done(Reason.NEXT_HOP_UNREACHABLE)
    if vnet is not view.vnet:
        _cross_peering(net, view, vnet.name, pkt, t)
    nva_view = net.subnet_view(nic.subnet)
    _inbound_nsgs(net, nva_view, nic, pkt, t)
    def step(action: Action) -> None:
        t.step(lambda: Step(net.topo.id_of("network_interfaces", nic), action,
                            ApplianceDetail(nic.name, str(hop_ip), nic.enable_ip_forwarding, net.guest_forwards(nic)),
                            action == Action.DROPPED))
    missing = _missing_forwarding(net, nic)
    if missing:
        step(Action.DROPPED)
        raise _Done(missing)
    if hops + 1 > MAX_APPLIANCE_HOPS:
        raise _Done(Reason.ROUTING_LOOP)
    step(Action.FORWARDED)
    pkt.public_src, pkt.nic = net.public_ip("network_interfaces", nic.name), nic
    _outbound_nsgs(net, nva_view, nic, pkt, t)
    _route_from(net, nva_view, pkt, t, hops + 1)


# -- the VPN gateway and the on-premises sites ------------------------------------------------------
def _gateway_step(net: LabView, gateway, hub, direction: str, connection, t: Trace, dropped: bool = False,
                  why: str | None = None, back: bool = False) -> None:
    topo = net.topo
    rid = topo.id_of("connections", connection) if connection else topo.id_of("virtual_network_gateways", gateway)
    t.step(lambda: Step(rid, Action.DROPPED if dropped else Action.FORWARDED, GatewayDetail(
        gateway.name, hub.name, direction, connection.name if connection else None,
        gateways.connection_status(topo, connection) if connection else None,
        connection.local_network_gateway if connection else None, why), dropped), back)


def _via_gateway(net: LabView, view: SubnetView, found, pkt: Packet, t: Trace) -> None:
    """To the VNet's VPN gateway (the hub's across the peering, by gateway transit), through the IPsec
    connection whose local network gateway holds the destination, to the on-premises host.
    https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-peering-gateway-transit"""
    gateway, hub = found
    if hub is not view.vnet:
        _cross_peering(net, view, hub.name, pkt, t, transit=True)
    connection = gateways.connection_to(net.topo, gateway, pkt.dst)
    if connection is None:
        _gateway_step(net, gateway, hub, "ToOnPremises", None, t, True,
                      f"no local network gateway connected to {gateway.name} holds {pkt.dst}")
        raise _Done(Reason.GATEWAY_NO_ROUTE)
    if gateways.connection_status(net.topo, connection) != "Connected":
        _gateway_step(net, gateway, hub, "ToOnPremises", connection, t, True)
        raise _Done(Reason.CONNECTION_NOT_CONNECTED)
    _gateway_step(net, gateway, hub, "ToOnPremises", connection, t)
    _at_on_premises(net, connection, gateway, hub, pkt, t)


def _at_on_premises(net: LabView, connection, gateway, hub, pkt: Packet, t: Trace) -> None:
    lng = connection.local_network_gateway.lower()
    found = net.on_premises_at.get(int(pkt.dst))
    if found is None or found[0].local_network_gateway.lower() != lng:
        site = next((s.name for s in net.topo.on_premises_sites if s.local_network_gateway.lower() == lng), None)
        t.step(lambda: Step(None, Action.DROPPED, DeliverDetail(str(pkt.dst), on_premises_site=site,
                                                                why="no host holds this address"), True))
        raise _Done(Reason.NO_HOST_AT_DESTINATION)
    site, host = found
    reason = _answer({(s.protocol, s.port) for s in host.services}, pkt)
    t.step(lambda: Step(None, _answered(reason), DeliverDetail(host.ip, host=host.name, on_premises_site=site.name,
                                                               source_seen=str(pkt.src))))
    _on_premises_return(net, site, hub, pkt, t)
    raise _Done(reason)


def _on_premises_return(net: LabView, site, hub, pkt: Packet, t: Trace) -> None:
    """The site routes back the ranges of the VNets behind its gateways; the reply crosses the tunnel
    and the GatewaySubnet's routes take it to the source."""
    back = gateways.site_routes_to(net.topo, site, pkt.src)
    if back is None:
        gateway = gateways.gateway_in(net.topo, hub)
        _gateway_step(net, gateway, hub, "FromOnPremises", None, t, True,
                      f"site {site.name} has no route back to {pkt.src}", back=True)
        raise _Done(Reason.RETURN_PATH_DROPPED)
    connection, gateway, _ = back
    gw_hub = net.vnet(gateway.virtual_network)
    _gateway_step(net, gateway, gw_hub, "FromOnPremises", connection, t, back=True)
    reply = Packet(pkt.dst, pkt.src, pkt.protocol, None, origin_vnet=gw_hub.name.lower())
    _return_route(net, net.subnet_view(gateway.subnet_ref), reply, t, 0)


def _from_on_premises(net: LabView, src: Endpoint, pkt: Packet, t: Trace) -> None:
    """From an on-premises host: through its site's IPsec connection to the gateway whose VNets hold the
    destination, then by the GatewaySubnet's effective routes (UDRs there apply)."""
    site, _ = net.on_premises_at[int(src.ip)]
    found = gateways.site_routes_to(net.topo, site, pkt.dst)
    if found is None:
        t.step(lambda: Step(None, Action.DROPPED, DeliverDetail(str(pkt.dst), on_premises_site=site.name,
                                                                why="the site has no VPN route to this address"),
                            True))
        raise _Done(Reason.ON_PREMISES_NO_ROUTE)
    connection, gateway, _ = found
    hub = net.vnet(gateway.virtual_network)
    connected = gateways.connection_status(net.topo, connection) == "Connected"
    _gateway_step(net, gateway, hub, "FromOnPremises", connection, t, not connected)
    if not connected:
        raise _Done(Reason.CONNECTION_NOT_CONNECTED)
    pkt.origin_vnet = hub.name.lower()
    pkt.origin_region = net.topo.location_of(hub)
    _route_from(net, net.subnet_view(gateway.subnet_ref), pkt, t, hops=0)


def _gateway_carries(net: LabView, view: SubnetView, ip: IPv4Address) -> bool:
    """The VNet's gateway (own or by transit) has a Connected connection to a site holding ``ip``."""
    found = gateways.gateway_for(net.topo, view.vnet)
    connection = gateways.connection_to(net.topo, found[0], ip) if found else None
    return connection is not None and gateways.connection_status(net.topo, connection) == "Connected"


# -- destinations -------------------------------------------------------------------------------
def _answer(services: set[tuple[str, int]], pkt: Packet) -> Reason:
    if pkt.protocol == "Icmp" or (pkt.protocol, pkt.port) in services:
        return Reason.REACHABLE
    return Reason.NO_LISTENER


def _answered(reason: Reason) -> Action:
    return Action.ANSWERED if reason == Reason.REACHABLE else Action.RESET


def _to_internet(net: LabView, pkt: Packet, t: Trace, view: SubnetView | None = None) -> None:
    """To the internet; ``view``: the subnet it leaves from (None: an app outside its VNet)."""
    if not is_public(int(pkt.dst)):
        t.step(lambda: Step(None, Action.DROPPED, InternetDetail(str(pkt.dst), "private address on the internet"),
                            True))
        raise _Done(Reason.PRIVATE_ADDRESS_ON_INTERNET)
    egress = _egress(net, pkt, view)
    if egress.address is None:
        t.step(lambda: Step(view.id, Action.DROPPED, InternetDetail(str(pkt.dst), "no outbound access from subnet "
                                                                    f"{view.ref}"), True))
        raise _Done(Reason.NO_OUTBOUND_ACCESS)
    if egress.method == "NatGateway" and pkt.protocol == "Icmp":
        # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#protocols
        t.step(lambda: Step(view.id, Action.DROPPED, InternetDetail(str(pkt.dst), f"NAT gateway {egress.resource} "
                                                                    "does not translate ICMP"), True))
        raise _Done(Reason.NAT_GATEWAY_NO_ICMP)
    pkt.public_src = egress.address
    if pkt.src != pkt.public_src:
        kind = _EGRESS_KINDS.get(egress.method)
        resource = net.topo.find(kind, egress.resource) if kind else None
        rid = net.topo.id_of(kind, resource) if kind else None
        why = f"outbound to the internet: {_EGRESS_WHY[egress.method]}"
        idle = None
        if egress.method == "NatGateway":
            # the NAT gateway forgets a TCP flow idle that long (4-120 minutes, default 4)
            # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#timers
            idle = resource.idle_timeout_in_minutes
            why += f" {resource.name} (TCP idle timeout {idle} minutes)"
        _snat(t, pkt, pkt.public_src, why, rid, idle)
    _on_internet(net, pkt, t)


def _on_internet(net: LabView, pkt: Packet, t: Trace) -> None:
    """A packet on the internet with its public source: a public endpoint of the lab takes it, a public
    IP of the lab (a NIC's, a NAT gateway's, a VPN gateway's), or an internet host."""
    service = net.paas.public_at.get(int(pkt.dst))
    if service is not None:
        _at_service(net, service, pkt, t, None)
    holder = net.public_ip_at.get(int(pkt.dst))
    if holder is not None:
        _at_public_ip(net, holder, pkt, t)
    host = net.internet_at.get(int(pkt.dst))
    if host is None:
        t.step(lambda: Step(None, Action.DROPPED, DeliverDetail(str(pkt.dst), internet=True,
                                                                why="no host of the lab's internet holds this "
                                                                    "address"), True))
        raise _Done(Reason.NO_HOST_AT_DESTINATION)
    reason = _answer({(s.protocol, s.port) for s in host.services}, pkt)
    t.step(lambda: Step(None, _answered(reason), DeliverDetail(host.ip, host=host.name, internet=True)))
    raise _Done(reason)


def _at_public_ip(net: LabView, holder, pkt: Packet, t: Trace) -> None:
    """What holds the public address answers for it: an instance-level public IP leads to its IP
    configuration's private address; a NAT gateway is outbound only ("Inbound originated isn't
    affected" by it, and it resets a TCP flow it does not know); a VPN gateway's public IP is the
    tunnel's end, which answers IKE/IPsec from its connections' devices only.
    https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource
    https://learn.microsoft.com/azure/nat-gateway/troubleshoot-nat-connectivity#connection-timeouts-and-timers"""
    if holder.kind == "network_interfaces":
        _to_instance_public_ip(net, holder, pkt, t)
    rid = net.topo.id_of(holder.kind, holder.resource)
    name = holder.resource.name
    if holder.kind == "nat_gateways":
        refused = pkt.protocol == "Tcp"
        why = f"NAT gateway {name} is outbound only: " + ("it resets a TCP flow it did not start" if refused
                                                         else "nothing answers a flow it did not start")
        t.step(lambda: Step(rid, Action.RESET if refused else Action.DROPPED,
                            DeliverDetail(str(pkt.dst), internet=True, why=why), not refused))
        raise _Done(Reason.NAT_GATEWAY_INBOUND_REFUSED if refused else Reason.NAT_GATEWAY_INBOUND_NOT_ANSWERED)
    t.step(lambda: Step(rid, Action.DROPPED, DeliverDetail(str(pkt.dst), internet=True, why=(
        f"the public IP of virtual network gateway {name}: the tunnel's end answers IKE/IPsec from its "
        "connections' devices only")), True))
    raise _Done(Reason.NO_HOST_AT_DESTINATION)


def _to_instance_public_ip(net: LabView, holder, pkt: Packet, t: Trace) -> None:
    """Inbound to a NIC's public IP: DNAT to the IP configuration's private address, then the VM's
    subnet and NIC NSGs with the internet source (the ``Internet`` tag matches it). A NAT gateway on the
    subnet does not change inbound ("Inbound originated isn't affected").
    https://learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses
    https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource"""
    nic = holder.resource
    private = holder.private_address()
    pip = net.topo.find("public_ip_addresses", holder.public_ip)
    before = pkt.dst
    t.step(lambda: Step(net.topo.id_of("public_ip_addresses", pip), Action.TRANSLATED, DnatDetail(
        str(before), str(private), pip.name, nic.name, nic.primary_ip_configuration,
        "inbound to the instance-level public IP: delivered to its IP configuration's private address")))
    pkt.public_dst, pkt.dst = before, private
    _deliver(net, net.subnet_view(nic.subnet).vnet, pkt, t)


_EGRESS_WHY = {"NatGateway": "the subnet's NAT gateway", "PublicIp": "the network interface's public IP",
               "DefaultOutbound": "default outbound access", "AppOutbound": "App Service public outbound address"}
_EGRESS_KINDS = {"NatGateway": "nat_gateways", "PublicIp": "public_ip_addresses"}


def _egress(net: LabView, pkt: Packet, view: SubnetView | None) -> Egress:
    """The public source the packet leaves with (engine.outbound decides)."""
    if pkt.nic is not None:
        return nic_egress(net.topo, pkt.nic, view.subnet, net.default_outbound[("network_interfaces",
                                                                                 pkt.nic.name.lower())])
    return app_egress(net.topo, view.subnet if view else None, view is not None, pkt.public_src)


def _deliver(net: LabView, vnet, pkt: Packet, t: Trace) -> None:
    key = (vnet.name.lower(), int(pkt.dst))
    endpoint = net.paas.private_at.get(key)
    if endpoint is not None:
        _at_private_endpoint(net, endpoint, pkt, t)
    nic = net.nic_at.get(key)
    if nic is not None:
        view = net.subnet_view(nic.subnet)
        vm = net.vm_of_nic.get(nic.name.lower())
        if vm is not None and not vm.running:
            t.step(lambda: Step(net.topo.id_of("virtual_machines", vm), Action.DROPPED, DeliverDetail(
                str(pkt.dst), virtual_machine=vm.name, why=f"VM {vm.name} is {vm.power_state}: nothing runs on it"),
                True))
            raise _Done(Reason.VM_NOT_RUNNING)
        _inbound_nsgs(net, view, nic, pkt, t)
        services = net.services_of(nic)
        if services is None:
            raise _Done(Reason.NO_HOST_AT_DESTINATION)
        reason = _answer(services, pkt)
        if t.explain:
            vm = net.vm_of_nic[nic.name.lower()]
            t.steps.append(Step(net.topo.id_of("virtual_machines", vm), _answered(reason),
                                DeliverDetail(str(pkt.dst), virtual_machine=vm.name,
                                              ip_configuration=nic.ip_configuration_at(pkt.dst),
                                              source_seen=str(pkt.src))))
        _return_path(net, view, pkt, t)
        raise _Done(reason)
    owner = net.app_at.get(key)
    if owner is not None:
        app, instance = owner
        refused = integration_inbound_refused(pkt.protocol)
        if t.explain:
            t.steps.append(Step(net.topo.id_of("web_apps", app), Action.RESET if refused else Action.DROPPED,
                                DeliverDetail(str(pkt.dst), web_app=app.name, instance=instance,
                                              why="VNet integration is outbound only"), not refused))
        if refused:
            _return_path(net, net.subnet_view(app.vnet_integration), pkt, t)
        raise _Done(Reason.INTEGRATION_INBOUND_REFUSED if refused else Reason.INTEGRATION_INBOUND_NOT_ANSWERED)
    t.step(lambda: Step(None, Action.DROPPED, DeliverDetail(str(pkt.dst), vnet=vnet.name,
                                                            why="no host holds this address"), True))
    raise _Done(Reason.NO_HOST_AT_DESTINATION)


# -- PaaS services ---------------------------------------------------------------------------------
def _paas_id(net: LabView, kind: str, resource) -> str | None:
    try:
        return net.topo.id_of(kind, resource)
    except KeyError:  # a kind without an ARM type in the lab
        return None


def _to_private_endpoint(net: LabView, view: SubnetView, pkt: Packet, t: Trace) -> None:
    """Follow a PE's /32 route to the PE, in this VNet or across the peering to the VNet holding it."""
    for vnet in [view.vnet] + [remote for remote, _ in net.peers[view.vnet.name.lower()].values()]:
        if (vnet.name.lower(), int(pkt.dst)) in net.paas.private_at:
            if vnet is not view.vnet:
                _cross_peering(net, view, vnet.name, pkt, t)
            _deliver(net, vnet, pkt, t)
    raise _Done(Reason.NO_HOST_AT_DESTINATION)  # a route to a PE the lab no longer has


def _at_private_endpoint(net: LabView, endpoint: paas.PaasEndpoint, pkt: Packet, t: Trace) -> None:
    """A PE passes traffic only with an Approved connection; its subnet's NSG filters only under NSG
    network policies. https://learn.microsoft.com/azure/private-link/private-endpoint-overview"""
    pe = endpoint.private_endpoint
    pe_view = net.subnet_view(pe.subnet)
    if not endpoint.approved:
        t.step(lambda: Step(_paas_id(net, "private_endpoints", pe), Action.DROPPED, DeliverDetail(
            str(pkt.dst), vnet=pe_view.vnet.name, why=f"private endpoint {pe.name}: connection "
            f"{paas.connection_state(pe)}, only Approved connections pass traffic"), True))
        raise _Done(Reason.PRIVATE_ENDPOINT_NOT_APPROVED)
    if paas.pe_nsg_applies(net.topo, pe):
        _nsg_check(net, pe_view.subnet.network_security_group, "Inbound", pe_view, pkt, t, "subnet " + pe_view.ref)
    _at_service(net, endpoint, pkt, t, None)


def _at_service(net: LabView, endpoint: paas.PaasEndpoint, pkt: Packet, t: Trace, subnet_id: str | None) -> None:
    """The PaaS service takes the connection (or does not serve the port) and admits or refuses it."""
    rid = _paas_id(net, endpoint.kind, endpoint.resource)
    if not endpoint.serves(pkt.protocol, pkt.port):
        ports = ", ".join(str(p) for p in sorted(endpoint.service.ports))
        t.step(lambda: Step(rid, Action.DROPPED, DeliverDetail(
            str(pkt.dst), why=f"{endpoint.describe()} serves TCP {ports} only"), True))
        raise _Done(Reason.SERVICE_PORT_NOT_SERVED)
    server_name = t.flow.destination if t.resolution is not None else None  # the name the client connected to
    admission = paas.admit(net, endpoint, endpoint.ip, pkt.src, subnet_id, pkt.origin_region, server_name,
                           t.headers)
    t.admission = admission
    where = "public" if endpoint.private_endpoint is None else f"private endpoint {endpoint.private_endpoint.name}"
    t.step(lambda: Step(rid, Action.ALLOWED if admission.allowed else Action.DENIED, AdmissionDetail(
        endpoint.service.label, endpoint.name, where, str(endpoint.ip), str(pkt.src), admission.allowed,
        admission.rule, subnet_id, admission.code, admission.http_status, admission.text)))
    if admission.allowed:
        raise _Done(Reason.REACHABLE)
    if admission.code == paas.WEB_STOPPED_CODE:
        raise _Done(Reason.WEB_APP_STOPPED)
    if admission.rule.startswith(paas.PUBLIC_ACCESS_CLOSED):
        raise _Done(Reason.PUBLIC_NETWORK_ACCESS_DISABLED)
    if endpoint.kind == "web_apps":
        raise _Done(Reason.ACCESS_RESTRICTION_DENIED)
    if admission.rule.startswith(paas.SQL_SERVER_NAME_RULE):
        raise _Done(Reason.SQL_SERVER_NAME_NOT_DETERMINED)
    raise _Done(Reason.SERVICE_FIREWALL_DENIED)


def _return_path(net: LabView, view: SubnetView, pkt: Packet, t: Trace) -> None:
    """Replies are not checked against NSGs (stateful) but need a route back. The reply to a flow that
    came in by an instance-level public IP must leave by the Internet route, where Azure translates it
    back to the public IP; a route to an appliance makes the path asymmetric: the client gets the reply
    from another address, or none (vnetlab's reading of the docs' asymmetric routing warnings)."""
    reply = Packet(pkt.dst, pkt.src, pkt.protocol, None, origin_vnet=view.vnet.name.lower())
    if pkt.public_dst is not None:
        route = view.route_for(reply.dst)
        ok = route.next_hop_type == "Internet"
        _route_step(view, route, t, dropped=not ok, back=True)
        if not ok:
            raise _Done(Reason.RETURN_PATH_DROPPED)
        return
    _return_route(net, view, reply, t, 0)


def _return_route(net: LabView, view: SubnetView, reply: Packet, t: Trace, hops: int) -> None:
    route = view.route_for(reply.dst)
    kind = route.next_hop_type
    ok = kind in ("VnetLocal", "VNetPeering", "VirtualAppliance") or (kind == "Internet" and is_public(int(reply.dst))) \
        or (kind == "VirtualNetworkGateway" and _gateway_carries(net, view, reply.dst))
    appliance = None  # the appliance the reply goes through
    if ok and kind == "VirtualAppliance" and IPv4Address(route.next_hop_ip) != reply.dst:
        appliance, _ = _holder_of(net, view, IPv4Address(route.next_hop_ip))
        ok = not (appliance is None or _missing_forwarding(net, appliance) or hops >= MAX_APPLIANCE_HOPS)
    _route_step(view, route, t, dropped=not ok, back=True)
    if not ok:
        raise _Done(Reason.RETURN_PATH_DROPPED)
    if kind == "VNetPeering":
        remote = route.remote_virtual_network
        if reply.origin_vnet != view.vnet.name.lower() and not net.accepts_forwarded(remote, view.vnet.name):
            raise _Done(Reason.RETURN_PATH_DROPPED)
    if appliance is not None:  # None too when the reply is for the appliance itself: delivered, not forwarded
        _return_route(net, net.subnet_view(appliance.subnet), reply, t, hops + 1)
