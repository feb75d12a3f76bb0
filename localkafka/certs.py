"""A throwaway certificate authority for local TLS clusters: a CA, broker certificates and client certificates.

Everything is PEM, which Kafka reads directly (``ssl.keystore.type=PEM``, KIP-651) as do Python's ``ssl``
and librdkafka, so no keytool or JKS is needed. Keys are unencrypted: they protect a local test cluster
and live in its folder, readable by its owner only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=825)  # the most browsers and most TLS stacks accept for a leaf


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as files; `bundle` holds the key then the certificate (Kafka's PEM keystore)."""

    cert: Path
    key: Path
    bundle: Path


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    units = [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)] if unit else []
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenantry local cluster"), *units,
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the one private-key PEM form Kafka's PEM keystore reads.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Authority:
    """A CA whose certificate and key live in `dir_` (made on first use, reused after)."""

    def __init__(self, dir_: Path) -> None:
        self.dir = Path(dir_)
        self.cert_file = self.dir / "ca.pem"
        key_file = self.dir / "ca.key"
        if self.cert_file.exists() and key_file.exists():
            self._cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
            key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self._key = key
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name("Tenantry local CA")
        self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                   content_commitment=False, key_encipherment=False,
                                                   data_encipherment=False, key_agreement=False,
                                                   encipher_only=False, decipher_only=False), critical=True)
                      .sign(self._key, hashes.SHA256()))
        _write_private(key_file, _key_pem(self._key))
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, common_name: str, hosts: tuple[str, ...] = (), client: bool = False,
              unit: str | None = None) -> Issued:
        """A leaf certificate for `hosts` (DNS names or IP addresses), written as DIR/<name>.pem/.key/-bundle.pem.

        A server certificate names its hosts as subject alternative names (what hostname checks read);
        a client certificate carries `common_name` (and an organizational `unit`), from which a broker or
        the proxy derives a principal: its subject reads "CN=<common_name>,OU=<unit>,O=Tenantry local cluster".
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH,
                                                                    ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (x509.CertificateBuilder().subject_name(_name(common_name, unit)).issuer_name(self._cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]),
                                            critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        issued = Issued(self.dir / f"{name}.pem", self.dir / f"{name}.key", self.dir / f"{name}-bundle.pem")
        issued.cert.write_bytes(cert_pem)
        _write_private(issued.key, _key_pem(key))
        _write_private(issued.bundle, _key_pem(key) + cert_pem)
        return issued


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
