"""Listening on a TCP port: alone, shared with the other worker processes of `serve --workers`,
or handed accepted connections by the parent of `serve --workers`.

A shared port is opened with SO_REUSEPORT (besides the SO_REUSEADDR Twisted always sets): every
worker binds its own socket to the same address, and the kernel spreads new connections over
them. Only processes of the same user may join; a process without the option still gets
"address in use". TLS is the same listener with Twisted's memory-BIO TLS wrapped around the
factory, as `listenSSL` does it.

The kernel's SO_REUSEPORT spreads connections by a hash of their addresses, so a handful of
ESME connections often lands unevenly (3 of 4 on one worker). For the SMPP ports the parent of
`serve --workers` therefore accepts itself and hands each connection to the next worker in turn
over a Unix socket (SCM_RIGHTS, one tag byte per descriptor: HANDOFF_TAGS); `adopt_handoff` is
the worker's end. Long-lived SMPP sessions make that one step per connection, not per message.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IFileDescriptorReceiver, IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

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


# The byte sent with each handed-over connection: which port it came in on.
HANDOFF_TAGS = {"smpp": b"p", "smpp_tls": b"t"}


@implementer(IFileDescriptorReceiver)
class _Handoff(Protocol):
    """The worker's end of the parent's Unix socket: each descriptor that comes with its tag
    byte becomes a connection of the factory for that tag, as if this worker had accepted it."""

    def __init__(self, reactor: Any, factories: dict[bytes, Factory]) -> None:
        self.reactor, self.factories = reactor, factories
        self.fds: deque[int] = deque()
        self.taken = 0
        self.closed = False

    def fileDescriptorReceived(self, descriptor: int) -> None:  # noqa: N802 (Twisted's name)
        self.fds.append(descriptor)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        for i in range(len(data)):
            if not self.fds:
                break  # a tag without its descriptor: nothing to adopt
            fd = self.fds.popleft()
            sock = socket.socket(fileno=fd)  # closed below: the reactor adopts a duplicate
            try:
                factory = self.factories.get(data[i : i + 1])
                if factory is not None and not self.closed:
                    self.reactor.adoptStreamConnection(sock.fileno(), sock.family, factory)
                    self.taken += 1
            except OSError:
                pass  # the client went away before it reached us
            finally:
                sock.close()

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.closed = True
        while self.fds:
            os.close(self.fds.popleft())


class _HandoffFactory(Factory):
    def __init__(self, handoff: _Handoff) -> None:
        self.handoff = handoff

    def buildProtocol(self, addr: Any) -> _Handoff:  # noqa: N802
        return self.handoff


def adopt_handoff(reactor: Any, fd: int, factories: dict[str, Factory], tls: Any = None) -> _Handoff:
    """Take the connections the parent hands over on Unix socket `fd`: `factories` by port name
    (HANDOFF_TAGS); "smpp_tls" connections get `tls` (CertificateOptions) wrapped around."""
    by_tag: dict[bytes, Factory] = {}
    for name, factory in factories.items():
        if name == "smpp_tls":
            factory = TLSMemoryBIOFactory(tls, False, factory)
        by_tag[HANDOFF_TAGS[name]] = factory
    handoff = _Handoff(reactor, by_tag)
    reactor.adoptStreamConnection(fd, socket.AF_UNIX, _HandoffFactory(handoff))
    os.close(fd)  # the reactor holds its own duplicate
    return handoff
