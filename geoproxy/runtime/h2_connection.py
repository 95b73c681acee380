"""HTTP/2 to clients: one connection, its streams multiplexed, each served like an HTTP/1.1
request (``geoproxy.runtime.h2_stream``). The protocol's state machine is the ``h2`` package
(python-hyper, sans-IO); this module does its I/O.

Rules:
1. Entry: ``serve_h2`` serves a connection that speaks HTTP/2 from its first byte: a bind with
   ``proto h2`` (h2c with prior knowledge), or TLS whose ALPN chose ``h2``. Its caller hands
   in the connection's environ (addresses, TLS facts, stick counters), which every stream's
   environ starts from.
2. SETTINGS from ``tune.h2.*`` (HAProxy 2.6's defaults: 100 concurrent streams, a 4096-byte
   header table, 65535-byte windows, 16384-byte frames); the header list size is the HTTP/1.1
   head's (``tune.bufsize`` less the rewrite reserve). Two bounds hold before the client
   acknowledges the SETTINGS (``h2`` applies them only after): the HPACK decoder's list size,
   and the concurrent streams (a stream past them is refused, ``REFUSED_STREAM``, before and
   after: ``h2`` would close the connection). The
   connection's receive window is opened to the streams' windows times the concurrent
   streams, so the streams' windows are what bound a client's uploads; each is handed back as
   the app reads the body.
3. Each stream runs in its own greenlet. Every use of the state machine and every write to
   the socket happen under the connection's one lock, so frames never interleave; a stream
   waiting for the client's window (its own or the connection's) waits outside it, at most
   ``timeout client``, then is reset. Response DATA is cut to the client's windows and
   largest frame.
4. Timeouts, as HAProxy 2.6 applies them to HTTP/2 (each falls back as for HTTP/1.1, to
   ``timeout client`` in the end): a connection without a stream open closes with GOAWAY
   after ``timeout http-keep-alive`` once it served a stream, after ``timeout http-request``
   before its first; a header block left unfinished (CONTINUATION pending) for ``timeout
   http-request`` closes the connection. A write blocked for ``timeout client`` ends the
   connection (the frame on the wire cannot be finished).
5. Graceful end: when the worker stops (shutdown, reload, ``max_requests``), or the client
   sends GOAWAY, a GOAWAY (NO_ERROR, last stream id) tells the client no new stream will be
   served; the streams in flight finish, then the connection closes. A stream opened after it
   is refused (RST_STREAM REFUSED_STREAM).
6. Abuse, answered without harm to the worker:
   - rapid reset (CVE-2023-44487): a stream the client resets before its greenlet ran never
     reaches the app; one already in the app is killed (its lease released, its server
     connection closed). A client that has cancelled more than twice
     ``tune.h2.max-concurrent-streams`` streams, and more streams than it let finish
     (malformed requests count as cancelled), gets GOAWAY ENHANCE_YOUR_CALM, and the
     connection closes;
   - CONTINUATION flood: a header block still open that holds more bytes than the header list
     size (HPACK never makes a list smaller than its block) gets GOAWAY ENHANCE_YOUR_CALM, and
     the connection closes (``h2`` itself stops at 64 CONTINUATION frames);
   - HPACK bomb: a header block that decodes to more than the header list size is refused
     with GOAWAY ENHANCE_YOUR_CALM;
   - a window held at zero: rule 3 and rule 4 bound the stream and the connection.
   Any other protocol error closes the connection with the GOAWAY ``h2`` prepared.
"""

from __future__ import annotations

import socket
import time
import weakref
from typing import Any, Final, cast

import gevent
from gevent.lock import RLock
from gevent.socket import wait_read
from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from geoproxy.config.model import H2Settings, RequestLimits
from geoproxy.errors import ClientGone
from geoproxy.netio import tls_pending
from geoproxy.runtime.h2_stream import Stream, parse_request, serve_stream

READ_SIZE: Final = 65536
_MAX_WINDOW: Final = 2**31 - 1
_LOOK_AGAIN: Final = 1.0  # seconds between two looks at the idle timeout while streams run
_STREAM_JOIN: Final = 5.0  # how long the connection's end waits for killed streams
_live: weakref.WeakSet[H2Server] = weakref.WeakSet()


def serve_h2(worker: Any, sock: Any, listener_name: Any, base: dict[str, Any],
             rest: bytes = b"") -> None:
    """Serve one HTTP/2 connection to its end (rule 1); ``rest``: bytes already read from it
    (after a PROXY header). Raises nothing but what a bug raises."""
    server = H2Server(worker, sock, listener_name, base)
    _live.add(server)
    try:
        server.serve(rest)
    except OSError:
        pass  # the client went away, or a write stalled past timeout client (rule 4)
    finally:
        _live.discard(server)
        server.finish()


def drain_all() -> None:
    """Rule 5 for every HTTP/2 connection of this worker (it is stopping). Each in a greenlet
    of its own: the caller is gunicorn's heartbeat, which must not wait on a slow client."""
    for server in list(_live):
        if not server.drain_asked:
            server.drain_asked = True
            gevent.spawn(server.start_draining)


def header_list_size(limits: RequestLimits) -> int:
    """SETTINGS_MAX_HEADER_LIST_SIZE: what an HTTP/1.1 head may hold (rule 2)."""
    return limits.max_head


class _Announced(Settings):
    """Our SETTINGS, as announced; ``h2`` would enforce MAX_CONCURRENT_STREAMS as a connection
    error (GOAWAY), where RFC 9113 5.1.2 has a stream refused: ``H2Server._open`` enforces it."""

    @property
    def max_concurrent_streams(self) -> int:
        return _MAX_WINDOW

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[SettingCodes.MAX_CONCURRENT_STREAMS] = value


def _stop_in_app(stream: Stream) -> None:
    """Rule 6: a cancelled stream's greenlet stops where it waits, if that is in the app (its
    server's answer, a lease, the queue). Run from the hub, when the greenlet is suspended:
    one suspended in this module's code (a write, a window) sees ``cancelled`` by itself, and
    is never interrupted halfway through a frame."""
    greenlet = stream.greenlet
    if stream.in_app and not stream.done and greenlet is not None and not greenlet.dead:
        # ClientGone, as when an HTTP/1.1 client's body cannot be read: the forwarder closes
        # the server connection, the lease and the queue place are released
        greenlet.throw(ClientGone(f"the client reset stream {stream.id}"))


class H2Server:
    """One HTTP/2 client connection (the module's rules)."""

    def __init__(self, worker: Any, sock: Any, listener_name: Any,
                 base: dict[str, Any]) -> None:
        self.worker = worker
        self.sock = sock
        self.base = base
        timeouts = worker.wsgi.client_timeouts(listener_name)
        self.client_timeout: float | None = timeouts.client
        self.head_timeout: float | None = timeouts.request_head
        self.idle_timeout: float | None = timeouts.idle
        self.idle_since = time.monotonic()  # when the last stream ended (or the connection began)
        sock.settimeout(self.client_timeout)  # every write (rule 4)
        try:
            # frames of several streams leave in separate writes: none may wait for an ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (a test's socket pair)
        self.limits: RequestLimits = worker.request_limits
        self.tune: H2Settings = getattr(worker, "h2_settings", None) or H2Settings()
        self.lock = RLock()
        self.streams: dict[int, Stream] = {}  # open for the client
        self.running: set[Stream] = set()  # whose greenlet has not ended (cancelled ones too)
        self.cancelled = 0
        self.finished = 0
        self.reset_bound = 2 * self.tune.max_concurrent_streams
        self.draining = False
        self.drain_asked = False
        self.last_stream = _MAX_WINDOW  # the last stream served once draining (rule 5)
        self.closed = False
        self.h2 = H2Connection(H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False,
            normalize_inbound_headers=False, validate_outbound_headers=False,
            normalize_outbound_headers=False))

    # -- the reader ---------------------------------------------------------------------------

    def serve(self, rest: bytes) -> None:
        tune, h2 = self.tune, self.h2
        list_size = header_list_size(self.limits)
        h2.local_settings = _Announced(client=False, initial_values={
            SettingCodes.HEADER_TABLE_SIZE: tune.header_table_size,
            SettingCodes.INITIAL_WINDOW_SIZE: tune.initial_window_size,
            SettingCodes.MAX_CONCURRENT_STREAMS: tune.max_concurrent_streams,
            SettingCodes.MAX_FRAME_SIZE: tune.max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: list_size,
        })
        # rule 2: bounded before the client's ACK of our SETTINGS
        h2.decoder.max_header_list_size = list_size
        h2.decoder.max_allowed_table_size = tune.header_table_size
        with self.lock:
            h2.initiate_connection()
            window = min(_MAX_WINDOW, tune.initial_window_size * tune.max_concurrent_streams)
            if window > 65535:
                h2.increment_flow_control_window(window - 65535)
            self._flush()
        if rest and not self._received(rest):
            return
        head_started: float | None = None
        while not self.closed:
            if self.draining and not self.streams:
                return
            now = time.monotonic()
            if not h2.incoming_buffer._headers_buffer:
                head_started = None
            elif head_started is None:
                head_started = now
            timeout = self._wait_limit(now)
            if timeout is not None and timeout <= 0:
                self._close(ErrorCodes.NO_ERROR)  # rule 4: idle
                return
            if head_started is not None and self.head_timeout is not None:
                left = head_started + self.head_timeout - now
                if left <= 0:
                    self._close(ErrorCodes.PROTOCOL_ERROR)  # rule 4: a header block stalled
                    return
                timeout = left if timeout is None else min(timeout, left)
            try:
                if not self._buffered():
                    wait_read(self.sock.fileno(), timeout)
            except TimeoutError:
                continue  # the loop's top decides
            data = self.sock.recv(READ_SIZE)
            if not data or not self._received(data):
                return
            pending = h2.incoming_buffer._headers_buffer
            if pending and sum(len(frame.data) for frame in pending) > list_size:
                self._close(ErrorCodes.ENHANCE_YOUR_CALM)  # rule 6: CONTINUATION flood
                return

    def _buffered(self) -> bool:
        """Whether a TLS socket holds decrypted bytes already (its file descriptor would not
        say so)."""
        return tls_pending(self.sock)

    def _wait_limit(self, now: float) -> float | None:
        """How long the reader may wait for the client (rule 4): while streams are open, a
        second (to look at the idle timeout again once they end: the streams are bounded by
        rule 3); then what is left of the idle timeout (None: no limit)."""
        if self.streams:
            return _LOOK_AGAIN
        limit = self.idle_timeout if self.h2.highest_inbound_stream_id else self.head_timeout
        return None if limit is None else self.idle_since + limit - now

    def _received(self, data: bytes) -> bool:
        """Feed the state machine; False when the connection is to end."""
        with self.lock:
            try:
                events = self.h2.receive_data(data)
            except ProtocolError:
                self._flush_quietly()  # the GOAWAY h2 prepared (rule 6)
                self.closed = True
                return False
            for event in events:
                self._dispatch(event)
            self._flush()
        return not self.closed

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._open(event)
        elif isinstance(event, DataReceived):
            self._data(event)
        elif isinstance(event, StreamEnded):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.ended = True
                stream.wakeup.set()
        elif isinstance(event, StreamReset):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None and not stream.done:
                self._cancel(stream)
                self._count_cancelled()
        elif isinstance(event, WindowUpdated):
            if event.stream_id:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.wakeup.set()
            else:
                self._wake_all()
        elif isinstance(event, RemoteSettingsChanged):
            self._wake_all()
        elif isinstance(event, ConnectionTerminated):
            if event.error_code:
                self.closed = True  # an error: nothing more is to be sent
                return
            # the client's graceful GOAWAY: what is in flight finishes (rule 5), which h2's
            # state machine, closed by any GOAWAY, would refuse to send
            self.h2.state_machine.state = ConnectionState.SERVER_OPEN
            self.start_draining()

    def _open(self, event: RequestReceived) -> None:
        stream_id = event.stream_id or 0
        if self.draining and stream_id > self.last_stream:
            self._reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        if len(self.streams) >= self.tune.max_concurrent_streams:
            # h2 applies our limit only once the client acknowledged it (rule 2)
            self._reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            self._count_cancelled()
            return
        if self.closed:
            return
        has_body = event.stream_ended is None
        headers = cast("list[tuple[bytes, bytes]]", list(event.headers or ()))
        request = parse_request(headers, self.limits, has_body)
        if request is None:
            self._reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)  # h2_stream rule 1
            log_refused = getattr(self.worker.wsgi, "log_refused", None)
            if log_refused is not None:  # HAProxy logs it: <BADREQ>, status 0, PR--
                log_refused(self.base, 0, 0, (time.time(), 0), False)
            self._count_cancelled()
            return
        stream = Stream(stream_id, (time.monotonic(), time.time()))
        stream.ended = not has_body
        self.streams[stream_id] = stream
        self.running.add(stream)
        stream.greenlet = gevent.spawn(self._run, stream, request)

    def _reset_stream(self, stream_id: int, code: ErrorCodes) -> None:
        """RST_STREAM, unless the client closed the stream already (in the same read)."""
        try:
            self.h2.reset_stream(stream_id, code)
        except ProtocolError:
            pass

    def _data(self, event: DataReceived) -> None:
        stream_id = event.stream_id or 0
        size = event.flow_controlled_length or 0
        data = event.data or b""
        stream = self.streams.get(stream_id)
        if stream is None or stream.done or stream.cancelled:
            if size:
                self.h2.acknowledge_received_data(size, stream_id)  # nobody will read it
            return
        if size > len(data):  # padding: handed back now
            self.h2.acknowledge_received_data(size - len(data), stream_id)
        if data:
            stream.chunks.append(data)
            stream.wakeup.set()

    def _count_cancelled(self) -> None:
        """Rule 6: rapid reset."""
        self.cancelled += 1
        if self.cancelled > self.reset_bound and self.cancelled > self.finished:
            self.worker.log.warning("HTTP/2 client %s cancelled %d streams: closing with "
                                    "ENHANCE_YOUR_CALM", self.base.get("REMOTE_ADDR"),
                                    self.cancelled)
            self._close(ErrorCodes.ENHANCE_YOUR_CALM)

    # -- streams --------------------------------------------------------------------------------

    def _run(self, stream: Stream, request: Any) -> None:
        try:
            if not stream.cancelled and not self.closed:
                serve_stream(self, stream, request)
        except gevent.GreenletExit:
            pass  # cancelled in the app (rule 6)
        except ClientGone:
            pass
        finally:
            stream.done = True
            self.streams.pop(stream.id, None)
            self.running.discard(stream)
            self.idle_since = time.monotonic()
            if not stream.cancelled:
                self.finished += 1
            self._release(stream)
            if self.draining and not self.streams:
                self._wake_reader()

    def _release(self, stream: Stream) -> None:
        """Hand back the window of body data the app never read."""
        unread = sum(len(chunk) for chunk in stream.chunks)
        stream.chunks.clear()
        if unread and not self.closed:
            try:
                with self.lock:
                    self.h2.acknowledge_received_data(unread, stream.id)
                    self._flush()
            except (OSError, ProtocolError):
                pass

    def _cancel(self, stream: Stream) -> None:
        """The stream is over for the client: it no longer counts among the open ones (what
        is left of its greenlet is cleaning up), and its greenlet is stopped once."""
        self.streams.pop(stream.id, None)
        self.idle_since = time.monotonic()
        if stream.cancelled:
            return
        stream.cancelled = True
        stream.wakeup.set()
        if stream.greenlet is not None and stream.greenlet is not gevent.getcurrent():
            gevent.get_hub().loop.run_callback(_stop_in_app, stream)

    def _wake_all(self) -> None:
        for stream in self.streams.values():
            stream.wakeup.set()

    # -- what streams call (h2_stream.StreamSink) ---------------------------------------------

    def send_headers(self, stream: Stream, headers: list[tuple[bytes, bytes]],
                     end: bool, flush: bool = True) -> None:
        """HEADERS; with ``flush`` False they leave with the next DATA (one write)."""
        with self.lock:
            self._check(stream)
            try:
                self.h2.send_headers(stream.id, headers, end_stream=end)
            except ProtocolError as error:
                raise ClientGone(f"stream {stream.id}: {error}") from error
            if flush:
                self._flush()

    def send_data(self, stream: Stream, data: bytes, end: bool) -> None:
        """Send ``data`` within the client's windows and frame size (rule 3)."""
        view = memoryview(data)
        while True:
            with self.lock:
                self._check(stream)
                h2 = self.h2
                try:
                    window = min(h2.local_flow_control_window(stream.id),
                                 h2.max_outbound_frame_size)
                    if window > 0 or not view:
                        piece, view = view[:window], view[window:]
                        h2.send_data(stream.id, piece.tobytes(), end_stream=end and not view)
                        self._flush()
                        if not view:
                            return
                        continue
                except ProtocolError as error:
                    raise ClientGone(f"stream {stream.id}: {error}") from error
                stream.wakeup.clear()
            if not stream.wakeup.wait(self.client_timeout):
                raise ClientGone("the client's window stayed closed past timeout client")

    def reset(self, stream: Stream, code: int) -> None:
        if stream.done or self.closed:
            return
        try:
            with self.lock:
                self.h2.reset_stream(stream.id, code)
                self._flush()
        except (OSError, ProtocolError):
            pass

    def consumed(self, stream: Stream, size: int) -> None:
        """The app read ``size`` bytes of the body: the client may send as many more."""
        in_app, stream.in_app = stream.in_app, False  # a write is never interrupted
        try:
            with self.lock:
                if self.closed:
                    return
                try:
                    self.h2.acknowledge_received_data(size, stream.id)
                except ProtocolError:
                    return
                self._flush()
        finally:
            stream.in_app = in_app

    def start_draining(self) -> None:
        """Rule 5: GOAWAY, no new stream; the connection ends after the last one."""
        with self.lock:
            if self.draining or self.closed:
                return
            self.draining = True
            self.last_stream = self.h2.highest_inbound_stream_id
            # sent beside the state machine: h2 would refuse to send DATA after its own GOAWAY
            frame = GoAwayFrame(0, last_stream_id=self.last_stream,
                                error_code=ErrorCodes.NO_ERROR)
            try:
                self._flush()
                self.sock.sendall(frame.serialize())
            except OSError:
                self._dead()
        if not self.streams:
            self._wake_reader()

    def _check(self, stream: Stream) -> None:
        if stream.cancelled or self.closed:
            raise ClientGone(f"stream {stream.id} reset or connection closed")

    # -- the socket ---------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                self._dead()
                raise

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except OSError:
            pass

    def _close(self, code: ErrorCodes) -> None:
        """GOAWAY with ``code``, and the connection ends."""
        with self.lock:
            if self.closed:
                return
            try:
                self.h2.close_connection(code)
            except ProtocolError:
                pass
            self._flush_quietly()
            self.closed = True
        for stream in list(self.streams.values()):
            self._cancel(stream)

    def _dead(self) -> None:
        """A write failed (maybe halfway through a frame): nothing more can be sent."""
        self.closed = True
        self._wake_reader()

    def _wake_reader(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def finish(self) -> None:
        """The connection is over: its streams are cancelled, and waited for (briefly)."""
        self.closed = True
        streams = list(self.running)
        for stream in streams:
            self._cancel(stream)
        greenlets = [s.greenlet for s in streams if s.greenlet is not None]
        if greenlets:
            gevent.joinall(greenlets, timeout=_STREAM_JOIN)
