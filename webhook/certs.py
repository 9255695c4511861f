"""Certificates for the webhook: a private CA and a serving certificate signed by it, renewed
without an outage.

The kube-apiserver only calls webhooks over TLS it can verify, so the CA bundle goes into the
MutatingWebhookConfiguration's `caBundle`. The bundle and the serving pair reach their readers at
different moments (the API server's copy of the configuration, the pod's Secret mount), so a
renewal must keep every serving certificate verifiable by the bundle before it *and* after it:

- a renewal reuses the CA and only re-issues the serving certificate: the bundle does not change;
- when the CA itself nears its end (it would expire within a serving certificate's lifetime plus
  30 days), a renewal adds a *next* CA to the bundle but still signs with the current one;
- the renewal after that signs with the next CA; the old one stays in the bundle until it expires.

So between two renewals, the serving certificate is always signed by a CA that both the previous
and the new bundle hold. `renew` is pure apart from generating keys; files are read and written
by `load` and `write`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM
ROTATE_MARGIN = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertState:
    """The CA bundle (every CA clients should trust), the CA keys we hold, the serving pair."""

    cas: tuple[x509.Certificate, ...]
    signer_key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    next_key: ec.EllipticCurvePrivateKey | None = None
    events: tuple[str, ...] = field(default=(), compare=False)

    @property
    def ca_pem(self) -> bytes:
        return b"".join(ca.public_bytes(PEM) for ca in self.cas)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return cert.public_key().public_numbers() == key.public_key().public_numbers()


def new_ca(common_name: str, days: int, now: dt.datetime | None = None
           ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed ECDSA P-256 CA that signs leaf certificates only (path length 0)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
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
    return cert, key


def _new_ca(now: dt.datetime, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return new_ca(f"agentroll-webhook-ca-{now:%Y%m%d%H%M%S}", days, now)


def issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    dns_names: list[str] | None = None,
    ips: list[str] | None = None,
    organization: str | None = None,
    client: bool = False,
    days: int = 365,
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serving (or, with client=True, client) certificate signed by ca, with a fresh key; it
    never outlives its CA."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names or []]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def new_signing_key() -> tuple[bytes, bytes]:
    """A P-256 key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo PEM), e.g. for service-account tokens."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key_pem(key), public


def _serving(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, dns_names: list[str],
             ips: list[str], now: dt.datetime, days: int):
    return issue(ca, ca_key, dns_names[0] if dns_names else ips[0], dns_names=dns_names, ips=ips,
                 days=days, now=now)


def renew(state: CertState | None, dns_names: list[str], ips: list[str], days: int = 365,
          ca_days: int = 3650, now: dt.datetime | None = None) -> CertState:
    """The next state: a new serving pair, and the CA bundle moved one step (module docstring)."""
    if not dns_names and not ips:
        raise ValueError("at least one --dns-name or --ip is needed for the certificate's SANs")
    for ip in ips:
        ipaddress.ip_address(ip)
    now = now or dt.datetime.now(dt.timezone.utc)
    events: list[str] = []
    cas = [c for c in (state.cas if state else ()) if c.not_valid_after_utc > now]

    def holding(key: ec.EllipticCurvePrivateKey | None) -> x509.Certificate | None:
        return next((c for c in cas if key is not None and _same_key(c, key)), None)

    signer_key = state.signer_key if state else None
    next_key = state.next_key if state else None
    signer, upcoming = holding(signer_key), holding(next_key)
    if upcoming is not None:
        signer, signer_key, next_key = upcoming, next_key, None
        events.append(f"now signing with the next CA {signer.subject.rfc4514_string()}")
    elif signer is None or signer_key is None:
        signer, signer_key = _new_ca(now, ca_days)
        next_key = None
        cas.append(signer)
        events.append(f"new CA {signer.subject.rfc4514_string()}")
    elif signer.not_valid_after_utc - now < dt.timedelta(days=days) + ROTATE_MARGIN:
        upcoming, next_key = _new_ca(now, ca_days)
        cas.append(upcoming)
        events.append(f"added the next CA {upcoming.subject.rfc4514_string()} to the bundle; "
                      "the next renewal signs with it")
    else:
        next_key = None
    cert, key = _serving(signer, signer_key, dns_names, ips, now, days)
    return CertState(cas=tuple(cas), signer_key=signer_key, cert=cert, key=key,
                     next_key=next_key, events=tuple(events))


FILES = ("ca.crt", "ca.key", "tls.crt", "tls.key")
NEXT_KEY = "ca-next.key"


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load(out_dir: Path) -> CertState | None:
    """The state written by `write`; None when there is none (or no CA key to renew with)."""
    try:
        cas = tuple(x509.load_pem_x509_certificates((out_dir / "ca.crt").read_bytes()))
        signer_key = serialization.load_pem_private_key((out_dir / "ca.key").read_bytes(), None)
        cert = x509.load_pem_x509_certificate((out_dir / "tls.crt").read_bytes())
        key = serialization.load_pem_private_key((out_dir / "tls.key").read_bytes(), None)
    except FileNotFoundError:
        return None
    next_path = out_dir / NEXT_KEY
    next_key = serialization.load_pem_private_key(next_path.read_bytes(), None) \
        if next_path.exists() else None
    return CertState(cas=cas, signer_key=signer_key, cert=cert, key=key, next_key=next_key)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically (a reader never sees half a file) with the given mode from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write(state: CertState, out_dir: Path) -> dict[str, Path]:
    """ca.crt (the bundle), ca.key (the signing CA's key, 0600), the serving pair, and
    ca-next.key while a next CA waits. The key is written before its certificate, so a reader
    that reloads on a changed certificate finds the matching key."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in FILES}
    _write(paths["ca.crt"], state.ca_pem, 0o644)
    _write(paths["ca.key"], key_pem(state.signer_key), 0o600)
    if state.next_key is not None:
        paths[NEXT_KEY] = out_dir / NEXT_KEY
        _write(paths[NEXT_KEY], key_pem(state.next_key), 0o600)
    else:
        (out_dir / NEXT_KEY).unlink(missing_ok=True)
    _write(paths["tls.key"], key_pem(state.key), 0o600)
    _write(paths["tls.crt"], state.cert.public_bytes(PEM), 0o644)
    return paths

