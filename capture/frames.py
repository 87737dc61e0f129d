"""Length-prefixed messages over a socket pair between two processes.

Each message is an 8-byte big-endian length and then that many bytes. The
web process's end, `LoopChannel`, keeps its socket non-blocking. What the
socket cannot take yet waits in a buffer until the loop finds the socket
writable again, and messages are read as the loop finds bytes to read.
The other end is an ordinary blocking socket used by one thread
(`send_message`, `receive_message`, `message_waiting`).

A blocking send on the loop stopped the whole web process whenever the
other process did not read (a long commit, a stopped process), and the two
could each wait for the other to read forever.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

HEADER = struct.Struct("!Q")
# Bytes asked of the socket per read on the loop.
READ_SIZE = 1 << 16


class LoopChannel:
    """The event loop's end of the socket pair.

    `on_message` gets each message that arrives, in order. `on_closed`
    runs once, when the other end closes or the socket fails, and after
    it the channel sends and receives nothing.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        on_message: Callable[[bytes], None],
        on_closed: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.on_message = on_message
        self.on_closed = on_closed
        self.unsent = bytearray()
        self.unread = bytearray()
        self.open = True
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._read)

    @property
    def unsent_bytes(self) -> int:
        return len(self.unsent)

    def send(self, message: bytes) -> None:
        """Send `message`, or keep what the socket cannot take for later."""
        if not self.open:
            return
        frame = HEADER.pack(len(message)) + message
        if self.unsent:
            self.unsent += frame
            return
        try:
            sent = self.sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            log.warning("sending to the other process failed: %r", error)
            self.close()
            return
        if sent < len(frame):
            self.unsent += frame[sent:]
            self.loop.add_writer(self.sock.fileno(), self._write)

    def close(self) -> None:
        """Stop reading and writing, close the socket and run `on_closed`."""
        if not self.open:
            return
        self.open = False
        self.loop.remove_reader(self.sock.fileno())
        if self.unsent:
            self.loop.remove_writer(self.sock.fileno())
            self.unsent.clear()
        self.sock.close()
        self.on_closed()

    def _write(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except BlockingIOError:
            return
        except OSError as error:
            log.warning("sending to the other process failed: %r", error)
            self.close()
            return
        del self.unsent[:sent]
        if not self.unsent:
            self.loop.remove_writer(self.sock.fileno())

    def _read(self) -> None:
        try:
            chunk = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            log.warning("reading from the other process failed: %r", error)
            chunk = b""
        if not chunk:
            self.close()
            return
        self.unread += chunk
        while self.open and len(self.unread) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.unread)
            end = HEADER.size + size
            if len(self.unread) < end:
                break
            message = bytes(self.unread[HEADER.size : end])
            del self.unread[:end]
            self.on_message(message)


def send_message(sock: socket.socket, message: bytes) -> None:
    """Send one message on a blocking socket."""
    sock.sendall(HEADER.pack(len(message)) + message)


def receive_message(sock: socket.socket) -> bytes:
    """Read one message from a blocking socket; raise EOFError at its end."""
    (size,) = HEADER.unpack(_read_exactly(sock, HEADER.size))
    return _read_exactly(sock, size)


def message_waiting(sock: socket.socket) -> bool:
    """Return True if bytes of a message, or the end, can be read at once."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), READ_SIZE))
        if not chunk:
            raise EOFError("the other process closed its end")
        data += chunk
    return bytes(data)
