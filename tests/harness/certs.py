"""A test CA and leaf certificates (cryptography), as PEM files, cached per session."""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import paths

KEY_TYPES = ("ec", "rsa", "ed25519")  # ECDSA P-256, RSA 2048, Ed25519


def _new_key(key_type: str):
    if key_type in ("ec", "ecdsa", "p256"):
        return ec.generate_private_key(ec.SECP256R1())
    if key_type in ("rsa", "rsa2048"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key_type must be one of {KEY_TYPES}, got {key_type!r}")


def _sign_hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one leaf certificate. ``chain`` holds the issuing CA certificate(s),
    ``fullchain`` leaf + chain, ``combined`` leaf + chain + key. Keys are mode 0600."""

    names: tuple[str, ...]
    key_type: str
    dir: Path
    cert: Path
    key: Path
    chain: Path
    fullchain: Path
    combined: Path
    certificate: x509.Certificate

    @property
    def name(self) -> str:
        return self.names[0]


class CertAuthority:
    """A self-signed test CA (ECDSA P-256 by default) that issues leaf certificates.

    ``CertAuthority(directory)`` creates the CA files ``ca.pem``/``ca.key`` there;
    :meth:`issue` caches: asking again for the same names and options returns the same files.
    """

    def __init__(self, directory: str | Path, *, key_type: str = "ec", name: str = "mod_bastion Test CA"):
        self.dir = paths.make_dirs(Path(directory))
        self.key_type = key_type
        self._lock = threading.Lock()
        self._issued: dict[tuple, CertFiles] = {}
        self.key = _new_key(key_type)
        now = _dt.datetime.now(_dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mod_bastion tests"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, _sign_hash(self.key))
        )
        self.cert_path = self.dir / "ca.pem"
        self.key_path = self.dir / "ca.key"
        _write(self.cert_path, _cert_pem(self.certificate), 0o644)
        _write(self.key_path, _key_pem(self.key), 0o600)

    def issue(
        self,
        names: str | Sequence[str],
        *,
        key_type: str = "ec",
        valid_from: _dt.datetime | None = None,
        valid_to: _dt.datetime | None = None,
        valid_days: int = 365,
        client: bool = False,
        tag: str = "",
    ) -> CertFiles:
        """A leaf for DNS names (IP addresses become IP SANs), first name is the CN.

        ``valid_from``/``valid_to`` default to yesterday / ``valid_days`` from now (pass past dates
        for an expired certificate). ``client=True`` adds clientAuth to the EKU. ``tag`` makes a
        distinct certificate with otherwise equal options. Files go to ``<ca dir>/<name>-<key_type>-<hash>/``.
        """
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names:
            raise ValueError("at least one name is needed")
        key = (names, key_type, valid_from, valid_to, valid_days, client, tag)
        with self._lock:
            if key in self._issued:
                return self._issued[key]
            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:10]
            safe = names[0].replace("*", "_wildcard").replace("/", "_").replace(":", "_")
            d = paths.make_dirs(self.dir / f"{safe}-{key_type}-{digest}")
            files = self._make(names, key_type, valid_from, valid_to, valid_days, client, d)
            self._issued[key] = files
            return files

    def _make(self, names, key_type, valid_from, valid_to, valid_days, client, d: Path) -> CertFiles:
        leaf_key = _new_key(key_type)
        now = _dt.datetime.now(_dt.timezone.utc)
        nb = valid_from or (now - _dt.timedelta(days=1))
        na = valid_to or (now + _dt.timedelta(days=valid_days))
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        eku = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        is_rsa = isinstance(leaf_key, rsa.RSAPrivateKey)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=is_rsa,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, _sign_hash(self.key))
        )
        leaf, ca, kp = _cert_pem(cert), _cert_pem(self.certificate), _key_pem(leaf_key)
        files = CertFiles(names=names, key_type=key_type, dir=d,
                          cert=d / "cert.pem", key=d / "key.pem", chain=d / "chain.pem",
                          fullchain=d / "fullchain.pem", combined=d / "combined.pem",
                          certificate=cert)
        _write(files.cert, leaf, 0o644)
        _write(files.key, kp, 0o600)
        _write(files.chain, ca, 0o644)
        _write(files.fullchain, leaf + ca, 0o644)
        _write(files.combined, leaf + ca + kp, 0o600)
        return files


_session_ca: CertAuthority | None = None
_session_lock = threading.Lock()


def session_ca(fresh_dir: bool = True) -> CertAuthority:
    """The process-wide CA under ``build/test-gen/certs`` (wiped when first created)."""
    global _session_ca
    with _session_lock:
        if _session_ca is None:
            if fresh_dir and paths.CERTS_DIR.exists():
                shutil.rmtree(paths.CERTS_DIR)
            paths.gen_root()
            _session_ca = CertAuthority(paths.CERTS_DIR)
        return _session_ca
