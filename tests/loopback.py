"""A loopback listener that only counts the connections made to it: the proof that a request
the service refused never reached this machine. A test module takes it as a fixture:
``with Listener() as made: yield made``."""

from __future__ import annotations

import socket
from types import TracebackType


class Listener:
    """Loopback sockets (127.0.0.1 and ::1, one port) that count the connections made to them;
    nothing is ever read or answered."""

    def __init__(self) -> None:
        self.v4 = socket.socket(socket.AF_INET)
        self.v4.bind(("127.0.0.1", 0))
        self.port: int = self.v4.getsockname()[1]
        self.v6 = socket.socket(socket.AF_INET6)
        self.v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.v6.bind(("::1", self.port))
        for sock in (self.v4, self.v6):
            sock.listen(64)
            sock.setblocking(False)

    @property
    def url(self) -> str:
        """An http URL on the listener."""
        return f"http://127.0.0.1:{self.port}/hook"

    def connections(self) -> int:
        """Connections made since the last call (the kernel completes them unaccepted)."""
        count = 0
        for sock in (self.v4, self.v6):
            while True:
                try:
                    accepted, _ = sock.accept()
                except BlockingIOError:
                    break
                accepted.close()
                count += 1
        return count

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.v4.close()
        self.v6.close()
