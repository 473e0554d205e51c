"""The lab's own certificate authority and the server certificate of the ARM endpoint.

The Azure SDK refuses bearer tokens over plain http and the az CLI has no switch for it, so
the endpoint speaks TLS with a CA that vnetlab makes once per lab home (``HOME/tls/``) and that
clients trust through ``connection_verify=ca.pem`` or ``REQUESTS_CA_BUNDLE=ca.pem``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path      # what clients trust
    chain: Path   # server certificate followed by the CA
    key: Path     # server private key
    ca_key: Path  # the CA's private key (it signs the emulated PaaS services' certificates too)

    def exist(self) -> bool:
        return all(p.is_file() and p.stat().st_size > 0 for p in (self.ca, self.chain, self.key, self.ca_key))


def tls_files(home: str | os.PathLike) -> TlsFiles:
    d = Path(home) / "tls"
    return TlsFiles(ca=d / "ca.pem", chain=d / "chain.pem", key=d / "key.pem", ca_key=d / "ca-key.pem")


def ensure_tls(home: str | os.PathLike) -> TlsFiles:
    """Create the CA and the server certificate under HOME/tls/ unless they are already there
    (a home made before the CA's key was kept gets a new CA once)."""
    files = tls_files(home)
    if files.exist():
        return files
    import trustme  # only needed the first time

    ca = trustme.CA(organization_name="vnetlab", organization_unit_name="vnetlab local CA")
    cert = ca.issue_cert(*SERVER_NAMES)
    files.ca.parent.mkdir(parents=True, exist_ok=True)
    _write(files.ca_key, ca.private_key_pem.bytes(), private=True)
    _write(files.ca, ca.cert_pem.bytes())
    _write(files.chain, b"".join(p.bytes() for p in cert.cert_chain_pems))
    _write(files.key, cert.private_key_pem.bytes(), private=True)
    return files


def issue_cert(home: str | os.PathLike, names: list[str], chain: Path, key: Path) -> bool:
    """A certificate of the lab's CA for ``names`` at ``chain``/``key`` (the emulated PaaS
    services'), unless one for exactly these names is there. Returns whether it was issued."""
    files = ensure_tls(home)
    stamp = chain.with_name(chain.name + ".names")
    want = "\n".join(sorted(n.lower() for n in names))
    if chain.is_file() and key.is_file() and stamp.is_file() and stamp.read_text() == want:
        return False
    import trustme

    ca = trustme.CA.from_pem(files.ca.read_bytes(), files.ca_key.read_bytes())
    cert = ca.issue_cert(*sorted(names))
    chain.parent.mkdir(parents=True, exist_ok=True)
    _write(key, cert.private_key_pem.bytes(), private=True)
    _write(chain, b"".join(p.bytes() for p in cert.cert_chain_pems))
    _write(stamp, want.encode())
    return True


def _write(path: Path, data: bytes, private: bool = False) -> None:
    # Write then rename, so a concurrent reader never sees half a PEM file.
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
