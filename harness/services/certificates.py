"""A private CA and one server certificate, made at `up`, so the proxy and Redis can require TLS.

AWS's endpoints present certificates from its own CA and clients verify against AWS's bundle; locally the
harness is that CA. The server certificate names 127.0.0.1 and localhost, so clients can verify the host
(sslmode=verify-full) exactly as they would against RDS Proxy's DNS name. The CA's key is not kept: nothing
signs after `up`, and a key that does not exist cannot leak.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.endpoints import TlsFiles

CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server.key"
# Renewed at `up` when less than this is left, so a long-lived state directory never serves an expired one.
RENEW_BEFORE = datetime.timedelta(days=7)
VALIDITY = datetime.timedelta(days=365)
SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


def tls_files(directory: Path) -> TlsFiles:
    return TlsFiles(directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dbunit-harness"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(common_name: str = "dbunit-harness local CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_ca_bundle(directory: Path, cert: x509.Certificate) -> Path:
    """A CA bundle file (for tests: a CA the servers do not use)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CA_FILE
    _write(path, _pem(cert), 0o644)
    return path


def _still_valid(files: TlsFiles) -> bool:
    if not (files.ca.is_file() and files.cert.is_file() and files.key.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    except ValueError:
        return False
    left = min(cert.not_valid_after_utc, ca.not_valid_after_utc) - datetime.datetime.now(datetime.UTC)
    return left > RENEW_BEFORE and cert.issuer == ca.subject


def ensure_certificates(directory: Path) -> TlsFiles:
    """The CA bundle and server certificate under `directory`: kept while valid, made afresh otherwise.

    The CA bundle and certificate are public (0644); the server key is 0600 and the caller gives it to the
    account the servers run as.
    """
    files = tls_files(directory)
    if _still_valid(files):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = make_ca()
    key, cert = make_server_cert(ca_key, ca_cert)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(files.key, key_pem, 0o600)
    _write(files.cert, _pem(cert), 0o644)
    _write(files.ca, _pem(ca_cert), 0o644)
    return files


def describe(files: TlsFiles) -> dict[str, str]:
    """Facts for status and reports: who issued the certificate, what it names, until when."""
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {
        "ca_bundle": str(files.ca),
        "issuer": cert.issuer.rfc4514_string(),
        "names": ", ".join(str(n.value) for n in names),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def tls_facts(mode: str, files: TlsFiles | None, direct: str) -> dict[str, Any]:
    """What status and reports say about TLS on each endpoint, for `tls = required | optional | off`."""
    facts: dict[str, Any] = {"mode": mode, "direct": direct}
    if files is None:
        facts.update(proxy="plain (tls = off)", redis="plain (tls = off)")
        return facts
    facts["proxy"] = "TLS required (plain clients refused)" if mode == "required" else "TLS offered, plain allowed"
    facts["redis"] = (
        "TLS only (plain clients refused)"
        if mode == "required"
        else "plain: one Redis port cannot serve TLS and plain (ElastiCache 'preferred' NOT EMULATED)"
    )
    facts["certificate"] = describe(files)
    return facts


def container_copy(files: TlsFiles, directory: Path) -> TlsFiles:
    """The files again under `directory`, readable by any account, for bind mounts into containers.

    A container's server runs as a non-root account of its image that cannot read a 0600 key owned by a
    host account, and a rootless engine maps ids again. The copy is world-readable, so
    `directory`'s parent must be private (0700): only the engine, which mounts `directory` itself, gets in.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    copy = tls_files(directory)
    for source, target in ((files.ca, copy.ca), (files.cert, copy.cert), (files.key, copy.key)):
        _write(target, source.read_bytes(), 0o644)
    return copy
