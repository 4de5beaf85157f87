"""The test servers' ports: never one the kernel may hand to an outgoing connection, and
never one another xdist worker may pick (CI once failed on "Address already in use")."""

from __future__ import annotations

import contextlib
import socket

import pytest

from tests.servers import _ephemeral_ports, free_port, port_slice


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_each_xdist_worker_has_its_own_ports_below_the_ephemeral_range(workers):
    slices = [set(port_slice(f"gw{index}", workers)) for index in range(workers)]
    every_port = set().union(*slices)
    assert sum(len(ports) for ports in slices) == len(every_port)  # disjoint
    assert all(len(ports) >= 1000 for ports in slices)
    assert max(every_port) < _ephemeral_ports().start
    assert min(every_port) >= 1024


def test_free_ports_are_distinct_and_a_server_can_bind_each():
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(50):
            port = free_port()
            listener = held.enter_context(socket.create_server(("127.0.0.1", port)))
            assert listener.getsockname()[1] == port
            ports.append(port)
        assert len(set(ports)) == len(ports)
        assert not set(ports) & set(_ephemeral_ports())
