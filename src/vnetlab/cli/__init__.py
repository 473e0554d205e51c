"""The ``vnetlab`` command line (typer + rich)."""
