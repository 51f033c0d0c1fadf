"""tcpkb: the failures people meet on TCP sockets on Linux, explained and proved."""

__version__ = "0.1.0"
