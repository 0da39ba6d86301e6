"""Listening on a TCP port: alone, or shared with the other worker processes of `serve --workers`.

A shared port is opened with SO_REUSEPORT (besides the SO_REUSEADDR Twisted always sets): every
worker binds its own socket to the same address, and the kernel spreads new connections over
them. Only processes of the same user may join; a process without the option still gets
"address in use". TLS is the same listener with Twisted's memory-BIO TLS wrapped around the
factory, as `listenSSL` does it.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory

# Connections the kernel completes before we accept them. Twisted's default of 50 overflows when
# many ESMEs reconnect at once (after a restart) or a flood arrives: the client's SYN is dropped
# and sent again a second later. The kernel caps it at net.core.somaxconn (4096 on Debian 12).
BACKLOG = 1024


class _SharedPort(tcp.Port):
    def createInternetSocket(self) -> socket.socket:
        s: socket.socket = super().createInternetSocket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return s


def listen(
    reactor: Any,
    host: str,
    port: int,
    factory: Factory,
    *,
    shared: bool = False,
    tls: Any = None,
) -> IListeningPort:
    """Listen on host:port; `shared`: with SO_REUSEPORT, beside other processes on that port;
    `tls`: the server's TLS options (twisted.internet.ssl.CertificateOptions) for a TLS port.
    Raises twisted.internet.error.CannotListenError as listenTCP does."""
    if tls is not None:
        factory = TLSMemoryBIOFactory(tls, False, factory)
    if not shared:
        listening: IListeningPort = reactor.listenTCP(port, factory, BACKLOG, host)
        return listening
    shared_port = _SharedPort(port, factory, BACKLOG, host, reactor)
    shared_port.startListening()
    return shared_port
