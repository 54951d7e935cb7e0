"""A server on a port of 127.0.0.1 that answers each connection in one way and closes it:
what a test needs of a service that misbehaves at its first word."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time


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


class FreezingProxy:
    """Forwards each connection to ``127.0.0.1:port`` on to ``(host, port)``, until
    :meth:`freeze`: from then on nothing more moves either way on the connections open at
    that moment, and their sockets stay open, so neither end is told (a host that froze, or
    a partition that sends no reset). Connections made after it are forwarded as before.
    ``down`` counts the bytes passed from the server to the client so far. ``delay``: each
    chunk is passed on that many seconds after it was read, either way (a slow link: its
    round trip is twice that); what is on its way as the proxy freezes is lost. Its own
    threads; :meth:`close` ends them."""

    def __init__(self, host: str, port: int, delay: float = 0.0) -> None:
        self.target = (host, port)
        self.delay = delay
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.down = 0
        self._lock = threading.Lock()
        #: one a connection: set once it froze, and the lock its sends hold
        self._frozen: list[tuple[threading.Event, threading.Lock]] = []
        self._socks: list[socket.socket] = []
        self._closing = threading.Event()
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def freeze(self) -> None:
        """Stop every connection open now, a chunk already read passed on whole."""
        with self._lock:
            connections = list(self._frozen)
        for frozen, sending in connections:
            with sending:  # a chunk being sent goes whole, and nothing after it
                frozen.set()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            frozen, sending = threading.Event(), threading.Lock()
            with self._lock:
                self._frozen.append((frozen, sending))
                self._socks += [client, server]
                for a, b, counted in ((client, server, False), (server, client, True)):
                    way: queue.SimpleQueue[tuple[float, bytes | None]] = queue.SimpleQueue()
                    for target, args in ((self._read, (a, way, frozen)),
                                         (self._pass, (way, b, counted, frozen, sending))):
                        thread = threading.Thread(target=target, args=args, daemon=True)
                        self._threads.append(thread)
                        thread.start()

    def _read(self, a: socket.socket, way: queue.SimpleQueue[tuple[float, bytes | None]],
              frozen: threading.Event) -> None:
        """Each chunk read from ``a`` (b"" at its end), with when it is due on the other
        side; nothing more once frozen, so that what ``a`` sends then fills the buffers. None
        last: nothing more comes."""
        try:
            while not frozen.is_set():
                data = a.recv(65536)
                way.put((time.monotonic() + self.delay, data))
                if not data:
                    return
        except OSError:
            pass
        finally:
            way.put((0.0, None))

    def _pass(self, way: queue.SimpleQueue[tuple[float, bytes | None]], b: socket.socket,
              counted: bool, frozen: threading.Event, sending: threading.Lock) -> None:
        try:
            while True:
                due, data = way.get()
                # the link's latency, not a wait for anything: close() cuts it short
                if data is None or self._closing.wait(max(0.0, due - time.monotonic())):
                    return
                with sending:
                    if frozen.is_set():
                        break
                    if not data:
                        b.shutdown(socket.SHUT_WR)
                        return
                    b.sendall(data)
                if counted:
                    with self._lock:
                        self.down += len(data)
        except OSError:
            return
        self._closing.wait()  # frozen: the sockets stay open, nothing moves

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._closing.set()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)
