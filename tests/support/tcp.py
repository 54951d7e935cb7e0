"""A server on a port of 127.0.0.1 that answers each connection in one way and closes it:
what a test needs of a service that misbehaves at its first word."""

from __future__ import annotations

import socket
import threading


class OneWayServer:
    """Takes each connection on ``port`` (0: any free one), hands it to :meth:`answer` and
    closes it. Its own thread; :meth:`close` ends it."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def answer(self, conn: socket.socket) -> None:
        """What the server does with one connection before it is closed."""

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self.answer(conn)
                except OSError:
                    pass  # the client went first

    def close(self) -> None:
        # a socket closed while a thread waits in accept() goes on listening until a
        # connection wakes it: a server started next on the port could not bind
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)
