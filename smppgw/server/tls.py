"""SMPP over TLS: the server's certificate options for its own TLS port (TLS 1.2 or newer).

The certificate file may hold a chain (the server's certificate first, then intermediates);
the key file holds the private key, both PEM.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet import ssl

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def server_options(cert_file: str, key_file: str) -> ssl.CertificateOptions:
    """CertificateOptions for listenSSL; raises ValueError naming the file that does not load."""
    try:
        chain = _PEM_CERT.findall(Path(cert_file).read_bytes())
        key = Path(key_file).read_bytes()
    except OSError as e:
        raise ValueError(f"{e.filename}: {e.strerror}") from None
    if not chain:
        raise ValueError(f"{cert_file}: no PEM certificate in it")
    try:
        cert = ssl.PrivateCertificate.loadPEM((key + b"\n" + chain[0]).decode("ascii"))
        extra = [ssl.Certificate.loadPEM(c).original for c in chain[1:]]
    except Exception as e:  # OpenSSL's own errors
        raise ValueError(
            f"{cert_file} / {key_file}: do not load as a certificate and its key ({e})"
        ) from None
    return ssl.CertificateOptions(
        privateKey=cert.privateKey.original,
        certificate=cert.original,
        extraCertChain=extra,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )
