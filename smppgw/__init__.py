"""smppgw: an SMPP 3.4 server that relays messages to HTTP SMS providers."""

__version__ = "0.1.0"
