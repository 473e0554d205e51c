"""vnetlab: a local lab for Azure virtual networking."""

__version__ = "0.1.0"
