"""Toxiproxy 2.12 behaviours the fault catalogue relies on, pinned against the real server.

- Removing a ``timeout`` toxic closes the connections it held: that heals a half-open socket for
  the client, so a worker without a read timeout would look fine afterwards.
- Setting its toxicity to 0 instead keeps them open, with the dropped replies lost for good: the
  "soft heal" that lets the no-read-timeout proof show a real LOCK-UP.
- ``bandwidth`` with ``rate=0`` holds the data (a stall) and delivers it when removed: unlike the
  ``timeout`` toxic it neither drops nor closes.
"""

from __future__ import annotations

import socket

from steadfetch.chaos.env import Stack

QUIET = 0.5  # long enough for a loopback PONG, many times over


def connect(stack: Stack) -> socket.socket:
    sock = socket.create_connection((stack.proxy_host, stack.proxy_port), timeout=5)
    sock.sendall(b"PING\r\n")
    assert sock.recv(64) == b"+PONG\r\n"
    return sock


def silent(sock: socket.socket) -> bool:
    """True when nothing (not even EOF) arrives within QUIET seconds."""
    sock.settimeout(QUIET)
    try:
        sock.recv(64)
    except TimeoutError:
        return True
    return False


def test_soft_heal_keeps_the_half_open_socket_and_loses_the_reply(stack: Stack) -> None:
    sock = connect(stack)
    stack.proxy.add_toxic("timeout", name="hole", timeout=0)
    sock.sendall(b"PING\r\n")
    assert silent(sock)  # the reply was dropped; the socket stays open
    stack.proxy.update_toxic("hole", toxicity=0)
    assert silent(sock)  # the lost reply never comes, and nothing tells the client
    sock.sendall(b"ECHO x\r\n")
    sock.settimeout(5)
    assert sock.recv(64) == b"$1\r\nx\r\n"  # the same socket works again
    sock.close()


def test_removing_the_timeout_toxic_closes_the_connection(stack: Stack) -> None:
    sock = connect(stack)
    stack.proxy.add_toxic("timeout", name="hole", timeout=0)
    sock.sendall(b"PING\r\n")
    assert silent(sock)
    stack.proxy.remove_toxic("hole")
    sock.settimeout(5)
    assert sock.recv(64) == b""  # EOF: the client learns the connection is gone
    sock.close()


def test_bandwidth_rate_zero_holds_replies_until_removed(stack: Stack) -> None:
    sock = connect(stack)
    stack.proxy.add_toxic("bandwidth", name="stall", rate=0)
    sock.sendall(b"PING\r\n")
    assert silent(sock)
    stack.proxy.remove_toxic("stall")
    sock.settimeout(5)
    assert sock.recv(64) == b"+PONG\r\n"  # held, not dropped
    sock.close()
