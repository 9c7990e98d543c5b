"""A tiny WebSocket echo server for system tests (Python stdlib only).

Listens with TLS on `port` and without on `plain_port`. The RFC 6455 opening
handshake (Sec-WebSocket-Accept from the client's key), then every text or
binary frame comes back unmasked with the same opcode;
ping gets pong, close gets close. `/refuse` answers 426 with a body instead
of upgrading. Every request head is kept in `log` (path, headers) so a test
can tell whether anything arrived. Runs an asyncio loop in a thread."""
import asyncio
import base64
import hashlib
import os
import ssl
import struct
import threading

from upstream import make_ca

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024
MAX_FRAME = 1 << 20


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def server_frame(opcode, payload):
    """One unmasked, final frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


async def read_frame(reader):
    """(opcode, payload) of one client frame, unmasked."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if n > MAX_FRAME:
        raise ValueError("frame too large")
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    key = (mask * (n // 4 + 1))[:n]
    plain = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return b0 & 0x0F, plain


class WsEcho:
    def __init__(self, directory, names=("ws.test",)):
        os.makedirs(directory, exist_ok=True)
        self.ca, crt, key = make_ca(directory, list(names))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.log = []
        self.echoed = 0  # frames echoed
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.ctx))
        self.port = self.server.sockets[0].getsockname()[1]
        # Plain TCP too: asyncio's TLS transport cannot half-close (a peer's
        # close_notify shuts it down before our echo is written), plain can.
        self.plain_server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.plain_port = self.plain_server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEAD:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            self.log.append({"method": method, "path": path, "headers": headers})
            if path == "/refuse":
                body = b"no upgrade here\n"
                writer.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                await reader.read(1)  # keep the connection until the client closes it
                return
            key = headers.get("sec-websocket-key", "")
            if headers.get("upgrade", "").lower() != "websocket" or not key:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                          % accept_key(key)).encode())
            await writer.drain()
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == 0x8:
                    writer.write(server_frame(0x8, payload[:2]))
                    await writer.drain()
                    return
                if opcode == 0x9:
                    writer.write(server_frame(0xA, payload))
                elif opcode in (0x1, 0x2):
                    writer.write(server_frame(opcode, payload))
                    self.echoed += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError,
                asyncio.LimitOverrunError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.plain_server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
