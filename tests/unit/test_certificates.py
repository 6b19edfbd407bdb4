"""The private CA and server certificate: what clients verify, kept while valid, private key private."""

import datetime
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from harness.services import certificates
from harness.services.certificates import ensure_certificates, make_ca, write_ca_bundle


def test_the_server_certificate_verifies_against_the_ca_for_loopback_names(tmp_path):
    files = ensure_certificates(tmp_path / "tls")
    context = ssl.create_default_context(cafile=str(files.ca))
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in names} == {"localhost", "127.0.0.1"}
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_the_key_is_private_and_the_ca_bundle_public(tmp_path):
    files = ensure_certificates(tmp_path / "tls")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca.stat().st_mode) == 0o644
    assert b"PRIVATE KEY" not in files.ca.read_bytes() + files.cert.read_bytes()


def test_certificates_are_kept_while_valid_and_renewed_when_they_expire_soon(tmp_path, monkeypatch):
    first = ensure_certificates(tmp_path)
    ca_before = first.ca.read_bytes()
    assert ensure_certificates(tmp_path).ca.read_bytes() == ca_before
    monkeypatch.setattr(certificates, "RENEW_BEFORE", datetime.timedelta(days=400))
    assert ensure_certificates(tmp_path).ca.read_bytes() != ca_before


def test_a_stranger_ca_does_not_verify_the_server_certificate(tmp_path):
    files = ensure_certificates(tmp_path / "tls")
    _, stranger = make_ca("stranger")
    bundle = write_ca_bundle(tmp_path / "other", stranger)
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    other = x509.load_pem_x509_certificate(bundle.read_bytes())
    with pytest.raises((ValueError, InvalidSignature)):
        cert.verify_directly_issued_by(other)
