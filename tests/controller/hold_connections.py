"""``python tests/controller/hold_connections.py HOST PORT COUNT SOURCE...``: hold idle connections.

Opens COUNT TCP connections to HOST:PORT, spread round-robin over the SOURCE addresses (the
controller caps connections per client address), waits until each has connected or failed, prints
one line ``connected=N failed=M``, then holds them, silent, until stdin closes. A child process of
test_limits.py: one process may not hold 20,000 sockets under this box's descriptor limit.
"""

from __future__ import annotations

import resource
import select
import socket
import sys
import time

_CONNECT_WAIT_S = 60.0


def main(argv: list[str]) -> int:
    host, port, count, sources = argv[0], int(argv[1]), int(argv[2]), argv[3:]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    poller = select.epoll()
    sockets: dict[int, socket.socket] = {}
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)  # noqa: FBT003 (socket API)
        sock.bind((sources[index % len(sources)], 0))
        sock.connect_ex((host, port))
        sockets[sock.fileno()] = sock
        poller.register(sock.fileno(), select.EPOLLOUT)
    connected = failed = 0
    deadline = time.monotonic() + _CONNECT_WAIT_S
    while connected + failed < count and time.monotonic() < deadline:
        for fd, _events in poller.poll(1.0):
            poller.unregister(fd)
            if sockets[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
            else:
                failed += 1
    sys.stdout.write(f"connected={connected} failed={failed}\n")
    sys.stdout.flush()
    sys.stdin.read()  # hold every socket until the test lets go
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
