"""The Azure network model: pydantic resources named as in ARM, ids, typed errors."""

from .compute import Service, VirtualMachine
from .dns import DnsServerConfig, DnsServerZone, PrivateDnsZone, RecordSet, VirtualNetworkLink
from .errors import AzureError, BackendError, Conflict, NotFound, ResourceNotFound
from .network import Delegation, IPConfiguration, NetworkInterface, Subnet, VirtualNetwork, VirtualNetworkPeering, WEB_SERVER_FARMS
from .paas import (KeyVault, KeyVaultNetworkAcls, PrivateEndpoint, SqlFirewallRule, SqlServer, SqlVirtualNetworkRule,
                   StorageAccount, StorageNetworkRuleSet)
from .gateways import Connection, LocalNetworkGateway, OnPremisesHost, OnPremisesSite, VirtualNetworkGateway
from .outbound import NatGateway, PublicIpAddress, PublicIpPrefix
from .nsg import DEFAULT_SECURITY_RULES, NetworkSecurityGroup, SecurityRule
from .routes import Route, RouteTable
from .topology import KINDS, InternetHost, ResourceGroup, Topology
from .web import AppServicePlan, OutboundVnetRouting, WebApp

__all__ = [
    "DnsServerConfig", "DnsServerZone", "KeyVault", "KeyVaultNetworkAcls", "PrivateDnsZone", "PrivateEndpoint",
    "RecordSet", "SqlFirewallRule", "SqlServer", "SqlVirtualNetworkRule", "StorageAccount", "StorageNetworkRuleSet",
    "VirtualNetworkLink", "NatGateway", "PublicIpAddress", "PublicIpPrefix",
    "Connection", "LocalNetworkGateway", "OnPremisesHost", "OnPremisesSite", "VirtualNetworkGateway",
    "AppServicePlan", "AzureError", "BackendError", "Conflict", "DEFAULT_SECURITY_RULES", "Delegation", "InternetHost", "IPConfiguration",
    "KINDS", "NetworkInterface", "NetworkSecurityGroup", "NotFound", "OutboundVnetRouting",
    "ResourceGroup", "ResourceNotFound", "Route", "RouteTable", "SecurityRule", "Service", "Subnet", "Topology", "VirtualMachine",
    "VirtualNetwork", "VirtualNetworkPeering", "WEB_SERVER_FARMS", "WebApp",
]
