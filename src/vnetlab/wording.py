"""How a trace step reads, one line in Azure's words: shared by the CLI's tables, the picture
(``vnetlab graph``) and the web page, so that each face says the same thing."""

from __future__ import annotations


def step_detail(s: dict) -> str:
    """One trace step (``Step.to_dict()``) in a line, in Azure's words."""
    k = s["kind"]
    if k == "KernelRoute":
        return f"sandbox {s.get('sandbox')}: {s.get('route')} via {s.get('gateway') or 'on-link'} dev {s.get('iface')}"
    if k == "Route":
        hop = s["next_hop_type"] + (f" {s['next_hop_ip']}" if s.get("next_hop_ip") else "")
        who = f" ({s['route_table']}/{s['route_name']})" if s.get("route_name") else ""
        return f"subnet {s['subnet']}: {s['address_prefix']} -> {hop} [{s['source']}{who}]"
    if k == "NetworkSecurityGroup":
        return (f"{s['nsg']} on {s['attached_to']} {s['direction']}: rule {s['rule']} "
                f"(priority {s['priority']}) {s['access']}")
    if k == "SNAT":
        return f"{s['from']} -> {s['to']} ({s['why']})"
    if k == "DNAT":
        return (f"{s['from']} -> {s['to']}: public IP {s['public_ip_address']} of {s['network_interface']}/"
                f"{s['ip_configuration']} ({s['why']})")
    if k == "VNetPeering":
        return f"{s['from_vnet']} -> {s['to_vnet']} via peering {s['peering']}"
    if k == "VirtualAppliance":
        return (f"{s['network_interface']} ({s['ip']}), IP forwarding {'on' if s['enable_ip_forwarding'] else 'off'}, "
                f"guest forwarding {'on' if s.get('guest_ip_forwarding') else 'off'}")
    if k == "VirtualNetworkGateway":
        arrow = "to on-premises" if s["direction"] == "ToOnPremises" else "from on-premises"
        via = (f" via connection {s['connection']} ({s.get('connection_status')}) to local network gateway "
               f"{s['local_network_gateway']}") if s.get("connection") else ""
        return f"VPN gateway {s['gateway']} in {s['vnet']}, {arrow}{via}" + (f": {s['why']}" if s.get("why") else "")
    if k == "Deliver":
        who = s.get("virtual_machine") or s.get("web_app") or s.get("host") or s.get("ip")
        if s.get("on_premises_site"):
            who = f"{who} at on-premises site {s['on_premises_site']}"
        extra = f", sees source {s['source_seen']}" if s.get("source_seen") else ""
        config = f" {s['ip_configuration']}" if s.get("ip_configuration") else ""
        return f"{who} ({s.get('ip')}{config}){extra}" + (f": {s['why']}" if s.get("why") else "")
    if k == "Resolution":
        return s["text"]
    if k == "Admission":
        return admission_line(s)
    return ", ".join(f"{k2}={v}" for k2, v in s.items() if k2 not in ("kind", "action", "dropped", "resource_id"))


def admission_line(s: dict) -> str:
    """A PaaS service's admission step: what it saw, and the rule that admitted or the error it sent."""
    via = f" via the service endpoint of {s['source_subnet'].split('/virtualNetworks/')[-1].replace('/subnets/', '/')}" \
        if s.get("source_subnet") else ""
    head = f"{s['service']} {s['resource']} ({s['endpoint']} {s['ip']}) sees {s['source_seen']}{via}: "
    if s["allowed"]:
        return head + f"admitted by {s['rule']}"
    status = f"HTTP {s['http_status']} " if s.get("http_status") else ""
    code = f"{status}{s['code']}: " if s.get("code") else ""
    text = (s.get("text") or "").replace("\r\n", " | ").replace("\n", " | ")
    return head + f"refused ({s['rule']}) {code}{text}".rstrip()
