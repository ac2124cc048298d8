#!/usr/bin/env python3
"""An echo business process for wsgate, in Python 3.11 with the standard library only.

It registers with a gateway for client messages and sends every message back, as the same
kind (text or binary), to the client that sent it. It is written from docs/protocol.md alone,
including a hand-written protobuf encoder and decoder for the few fields it needs.

    python3 examples/python/echo.py --gateway 127.0.0.1:8081 [--token T] [--name N]

Prints `registered <node_id>` on stdout once the gateway accepts it. Exits when the link
closes: status 0 after a plain close, 1 after an Error frame, a heartbeat timeout or a frame
it cannot read.
"""

import argparse
import itertools
import socket
import struct
import sys
import time

# --- Protobuf wire format (docs/protocol.md section 3) -------------------------------------

VARINT, I64, LEN, I32 = 0, 1, 2, 5  # wire types


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, value: int | str | bytes) -> bytes:
    """One field. Zero ints and empty strings are defaults and left out; bytes (data and
    embedded messages) are always written, so an empty Payload is still present."""
    if isinstance(value, int):
        return varint(number << 3 | VARINT) + varint(value) if value else b""
    if isinstance(value, str):
        if not value:
            return b""
        value = value.encode()
    return varint(number << 3 | LEN) + varint(len(value)) + value


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def parse(buf: bytes) -> dict[int, list]:
    """Decodes one message into {field number: [values]}: varints as int, everything else
    as bytes. Unknown fields are skipped by wire type."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        wire = key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        else:
            if wire == LEN:
                size, pos = read_varint(buf, pos)
            elif wire in (I64, I32):
                size = 8 if wire == I64 else 4
            else:
                raise ValueError(f"wire type {wire} is not used by protobuf 3")
            if pos + size > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + size], pos + size
        fields.setdefault(key >> 3, []).append(value)
    return fields


def get(fields: dict[int, list], number: int, default):
    """A singular field: the last value wins; a missing field is its default."""
    return fields.get(number, [default])[-1]


# --- Protocol constants (sections 4-6 and 11) ----------------------------------------------

REQUEST_ID = 1
REGISTER, REGISTER_OK, ERROR, PING, PONG = 10, 11, 12, 13, 14
EVENT_SEQ = 2  # Envelope field: the event's number on a link registered with acks
ACK = 16
ACK_EVERY, ACK_DELAY = 32, 0.02  # acknowledge after this many events, or this long
CONN_OPEN, CONN_MESSAGE, CONN_CLOSE = 20, 21, 22
SINGLE_CAST, RESULT = 30, 40
EVENT_KIND_MESSAGE = 2
ERROR_CODES = ["OK", "UNAUTHENTICATED", "NOT_REGISTERED", "BAD_REQUEST", "UNKNOWN_CONNECTION",
               "FRAME_TOO_LARGE", "DECODE_FAILED", "UNSUPPORTED", "HEARTBEAT_TIMEOUT",
               "SHUTTING_DOWN", "UNSUPPORTED_VERSION", "LIMIT_EXCEEDED", "ACK_TIMEOUT"]
UNSUPPORTED, FRAME_TOO_LARGE, DECODE_FAILED = 7, 5, 6


def code_name(code: int) -> str:
    return ERROR_CODES[code] if code < len(ERROR_CODES) else f"code {code}"


# --- Framing (section 2) -------------------------------------------------------------------

class Link:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.max_frame = 16 * 1024 * 1024  # until RegisterOk says otherwise

    def send(self, request_id: int, body_number: int, body: bytes) -> None:
        """Sends one Envelope: the request id (when non-zero) and the body, always written."""
        env = field(REQUEST_ID, request_id) + varint(body_number << 3 | LEN) + varint(len(body)) + body
        self.sock.sendall(struct.pack(">I", len(env)) + env)

    def recv(self, timeout: float) -> dict[int, list] | None:
        """The next Envelope, or None after `timeout` seconds. Raises EOFError when the link
        closes and FrameError for a frame that cannot be read."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                (size,) = struct.unpack_from(">I", self.buf)
                if size > self.max_frame:
                    raise FrameError(FRAME_TOO_LARGE, f"frame of {size} bytes exceeds {self.max_frame}")
                if len(self.buf) >= 4 + size:
                    frame = bytes(self.buf[4:4 + size])
                    del self.buf[:4 + size]
                    try:
                        return parse(frame)
                    except ValueError as e:
                        raise FrameError(DECODE_FAILED, f"frame is not an Envelope: {e}") from e
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise EOFError
            self.buf += chunk


class FrameError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def body_of(env: dict[int, list]) -> tuple[int, bytes]:
    """The Envelope's body: (field number, message bytes); (0, b"") when there is none."""
    bodies = [n for n in env if n != REQUEST_ID]
    return (bodies[-1], env[bodies[-1]][-1]) if bodies else (0, b"")


# --- The business process ------------------------------------------------------------------

def log(*parts) -> None:
    print("echo.py:", *parts, file=sys.stderr, flush=True)


def run(link: Link, name: str, token: str, acks: bool) -> int:
    register = field(1, name) + field(2, token) + field(3, varint(EVENT_KIND_MESSAGE)) + field(4, 1)
    if acks:
        register += field(6, 1)  # Register.acks: events at least once (section 9)
    link.send(1, REGISTER, register)
    request_ids = itertools.count(2)  # 1 was the Register
    interval, timeout = 10.0, 30.0  # replaced by RegisterOk's limits
    next_ping = None  # no Pings before RegisterOk
    last_heard = time.monotonic()
    had_error = False
    # With acks: every event up to `handled` has been echoed; `acked` is what the gateway was
    # told; an Ack goes every ACK_EVERY events, or ACK_DELAY after the first one not yet told.
    handled = acked = 0
    ack_every, ack_due = ACK_EVERY, None

    def send_ack() -> None:
        nonlocal acked, ack_due
        link.send(0, ACK, field(1, handled))
        acked, ack_due = handled, None

    def took(env: dict[int, list]) -> None:
        """An event was handled: acknowledge it (batched) if the link numbers events."""
        nonlocal handled, ack_due
        seq = get(env, EVENT_SEQ, 0)
        if not seq:
            return
        handled = seq
        if ack_due is None:
            ack_due = time.monotonic() + ACK_DELAY
        if handled - acked >= ack_every:
            send_ack()

    while True:
        now = time.monotonic()
        if now - last_heard >= timeout:
            log(f"heard nothing from the gateway for {timeout:g}s; closing the link")
            return 1
        if next_ping is not None and now >= next_ping:
            link.send(0, PING, b"")
            next_ping = now + interval
        if ack_due is not None and now >= ack_due:
            send_ack()
        wake = last_heard + timeout if next_ping is None else min(next_ping, last_heard + timeout)
        if ack_due is not None:
            wake = min(wake, ack_due)
        try:
            env = link.recv(max(wake - now, 0))
        except EOFError:
            log("the gateway closed the link")
            return 1 if had_error else 0
        except FrameError as e:
            log(e)
            link.send(0, ERROR, field(1, e.code) + field(2, str(e)))
            return 1
        if env is None:
            continue
        last_heard = time.monotonic()
        request_id = get(env, REQUEST_ID, 0)
        kind, body = body_of(env)

        if kind == REGISTER_OK:
            ok = parse(body)
            limits = parse(get(ok, 3, b""))
            link.max_frame = get(limits, 1, link.max_frame)
            interval = get(limits, 3, 10000) / 1000
            timeout = get(limits, 4, 30000) / 1000
            ack_every = max(1, min(ACK_EVERY, get(limits, 11, 4 * ACK_EVERY) // 4))
            next_ping = time.monotonic() + interval
            print(f"registered {get(ok, 1, b'').decode()}", flush=True)
        elif kind == PING:
            link.send(request_id, PONG, b"")
        elif kind == CONN_MESSAGE:
            msg = parse(body)
            conn_id = get(msg, 1, b"").decode()
            payload = parse(get(msg, 2, b""))
            data, payload_kind = get(payload, 1, b""), get(payload, 2, 0)
            echo = field(1, conn_id) + field(2, field(1, data) + field(2, payload_kind))
            link.send(next(request_ids), SINGLE_CAST, echo)
            took(env)  # echoed: handled
        elif kind == RESULT:
            result = parse(body)
            code = get(result, 1, 0)
            if code != 0:
                unknown = [c.decode() for c in result.get(4, [])]
                log(f"request {request_id}: {code_name(code)}: {get(result, 2, b'').decode()} "
                    f"(unknown: {', '.join(unknown) or 'none'})")
        elif kind == ERROR:
            err = parse(body)
            had_error = True
            log(f"gateway error {code_name(get(err, 1, 0))}: {get(err, 2, b'').decode()}")
        elif kind == PONG:
            pass  # any frame is proof of life
        elif kind in (CONN_OPEN, CONN_CLOSE):
            took(env)  # not asked for; nothing to do but acknowledge
        else:
            # An unknown body (or none): say so and keep the link open (section 14).
            link.send(request_id, ERROR, field(1, UNSUPPORTED) + field(2, f"echo.py does not handle body {kind}"))


def main() -> int:
    parser = argparse.ArgumentParser(description="wsgate echo business process (stdlib Python)")
    parser.add_argument("--gateway", default="127.0.0.1:8081", help="worker link address, host:port")
    parser.add_argument("--token", default="", help="the gateway's --worker-token, if it has one")
    parser.add_argument("--name", default="echo-python", help="name shown in the gateway's logs")
    parser.add_argument("--acks", action="store_true",
                        help="acknowledge each message once echoed: at least once (docs/delivery.md)")
    args = parser.parse_args()

    host, _, port = args.gateway.rpartition(":")
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    except (OSError, ValueError) as e:
        log(f"cannot connect to the gateway at {args.gateway}: {e}; is `cargo run -p wsgate` running?")
        return 1
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return run(Link(sock), args.name, args.token, args.acks)
        except KeyboardInterrupt:
            return 0
        except OSError as e:
            log(f"worker link failed: {e}")
            return 1
        except ValueError as e:  # a body that does not decode
            log(f"cannot decode a message from the gateway: {e}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
