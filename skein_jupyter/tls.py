"""Verify a notebook server's TLS certificate against the fingerprint it published.

A server started with ``--tls`` serves a self-signed certificate made for its
application and publishes the certificate's SHA-256 in the key-value store
(``ServerInfo.tls_fingerprint``), which reaches the client over Skein's own
authenticated channel. The certificate names no host (servers run on any
node and are reached through tunnels), so the check is by pinning, not by
host name: a connection is trusted when the server presents exactly that
certificate, which only the holder of its private key can do.
"""
from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from .exceptions import UsageError
from .runtime.notebook import certificate_fingerprint

if TYPE_CHECKING:
    from .notebook import ServerInfo

__all__ = ["certificate_fingerprint", "fetch_certificate", "verify_certificate", "ssl_context"]


def _pinned(server: ServerInfo) -> str:
    if server.protocol != "https" or not server.tls_fingerprint:
        raise UsageError(f"{server.app_id} serves {server.protocol} without a published certificate "
                         "fingerprint; start the server with --tls")
    return server.tls_fingerprint.upper()


def fetch_certificate(server: ServerInfo, host: str | None = None, port: int | None = None,
                      timeout: float = 30) -> str:
    """The certificate (PEM) the server presents at ``host:port`` (its own address by default, or a tunnel's).

    Not verified: pass it to :func:`verify_certificate`.
    """
    if server.protocol != "https":
        from .exceptions import UsageError

        raise UsageError(f"the server in {server.app_id} serves plain HTTP, not TLS; start it with --tls")
    return ssl.get_server_certificate((host or server.host, port or server.port), timeout=timeout)


def verify_certificate(server: ServerInfo, certificate: bytes | str) -> None:
    """Check that ``certificate`` (DER bytes or PEM text) is the one ``server`` published.

    Raises
    ------
    ssl.SSLCertVerificationError
        When its SHA-256 differs from ``server.tls_fingerprint``: the other end is not the server.
    UsageError
        When the server published no fingerprint (it serves plain HTTP).
    """
    expected = _pinned(server)
    der = ssl.PEM_cert_to_DER_cert(certificate) if isinstance(certificate, str) else certificate
    actual = certificate_fingerprint(der)
    if actual != expected:
        raise ssl.SSLCertVerificationError(
            f"the certificate presented for {server.app_id} has SHA-256 {actual}, but the server "
            f"published {expected}: this is not the server; do not send it the token")


def ssl_context(server: ServerInfo, certificate: str | None = None, host: str | None = None,
                port: int | None = None) -> ssl.SSLContext:
    """An :class:`ssl.SSLContext` that trusts exactly the certificate ``server`` published.

    The certificate is fetched from ``host:port`` (the server's address by
    default; give a tunnel's local port to go through it) unless given as PEM,
    checked against the published fingerprint, and made the context's only
    trust anchor; host names are not checked (the certificate names none).
    Use it with urllib, http.client, websocket-client or requests' adapters.

    Examples
    --------
    .. code-block:: python

        server = skein_jupyter.notebook.info(skein.Client(), app_id)
        context = skein_jupyter.tls.ssl_context(server)
        urllib.request.urlopen(server.url(), context=context)
    """
    pem = certificate if certificate is not None else fetch_certificate(server, host, port)
    verify_certificate(server, pem)
    context = ssl.create_default_context(cadata=pem)
    context.check_hostname = False
    return context
