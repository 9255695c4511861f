"""Certificates for the webhook: a private CA and a serving certificate signed by it.

The kube-apiserver only calls webhooks over TLS it can verify, so the CA goes into the
MutatingWebhookConfiguration's `caBundle`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertBundle:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Authority:
    """A CA that can issue certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _pem_key(self.key)


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _validity(days: int) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    return now, now + dt.timedelta(days=days)


def new_ca(common_name: str, days: int = 365) -> Authority:
    """A self-signed ECDSA P-256 CA that signs leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    start, until = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def issue(
    ca: Authority,
    common_name: str,
    *,
    dns_names: list[str] | None = None,
    ips: list[str] | None = None,
    organization: str | None = None,
    client: bool = False,
    days: int = 365,
) -> Issued:
    """A serving (or, with client=True, client) certificate signed by ca, with a fresh key."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, until = _validity(days)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names or []]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def new_signing_key() -> tuple[bytes, bytes]:
    """A P-256 key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo PEM), e.g. for service-account tokens."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _pem_key(key), public


def generate(
    dns_names: list[str], ips: list[str], days: int = 365, common_name: str | None = None
) -> CertBundle:
    """A fresh CA and a serving certificate for the given SANs (ECDSA P-256)."""
    if not dns_names and not ips:
        raise ValueError("at least one --dns-name or --ip is needed for the certificate's SANs")
    for ip in ips:
        ipaddress.ip_address(ip)
    ca = new_ca("agentroll-webhook-ca", days)
    leaf = issue(ca, common_name or (dns_names[0] if dns_names else ips[0]),
                 dns_names=dns_names, ips=ips, days=days)
    return CertBundle(ca_pem=ca.cert_pem, cert_pem=leaf.cert_pem, key_pem=leaf.key_pem)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically (a reader never sees half a file) with the given mode from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write(bundle: CertBundle, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("ca.crt", "tls.crt", "tls.key")}
    _write(paths["ca.crt"], bundle.ca_pem, 0o644)
    _write(paths["tls.key"], bundle.key_pem, 0o600)
    _write(paths["tls.crt"], bundle.cert_pem, 0o644)
    return paths
