"""A small HTTP/1.1 client for signed URLs: GET into a file, PUT from a file, never a whole body in memory.

Not http.client: importing it (with email and ssl) costs more than the rest of a small task's run. Plain
http goes through _socket directly (the socket module's enum set-up costs ~4 ms); ssl is imported only
for an https URL.
"""

import _socket
import os
import time

TIMEOUT = 60.0
# Seconds before each further try of a transient failure: about 10 s in all, so a worker rides out a
# restart of the storage server (the chaos soak's API kills) instead of failing the attempt. A run's
# DWOP_RETRY_DELAYS replaces it (see parse_retry_delays).
RETRY_DELAYS = (0.2, 0.5, 1.5, 3.0, 5.0)
MAX_RETRIES = 20
CHUNK = 256 * 1024
MAX_REDIRECTS = 5
MAX_CONCURRENT = 16  # requests in flight at once


class HttpError(Exception):
    """A non-2xx answer. 5xx, 408 and 429 are transient; any other status is final."""

    def __init__(self, status, detail):
        super().__init__("HTTP %d%s" % (status, (": " + detail) if detail else ""))
        self.status = status
        self.transient = status >= 500 or status in (408, 429)


def is_transient(error):
    """Connection failures and transient statuses are worth another try; a bad URL or a 4xx is not."""
    if isinstance(error, HttpError):
        return error.transient
    return isinstance(error, OSError)


class Transfer:
    """One object to move: a GET written to fd (only bytes [offset, offset + length) of it when
    byte_range is (offset, length)), or a PUT of fd's whole content."""

    def __init__(self, method, url, fd, what, byte_range=None):
        self.method = method
        self.url = url
        self.fd = fd
        self.what = what
        self.byte_range = byte_range

    def start(self):
        """Connects and sends the request; returns the socket with the response still to read."""
        if self.method == "GET":
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            return send_request("GET", self.url, None, range_header(self.byte_range))
        return send_request(self.method, self.url, self.fd)

    def finish(self, sock):
        sink = self.fd if self.method == "GET" else None
        read_response(sock, self.method, self.url, sink, byte_range=self.byte_range)

    def run_once(self):
        self.finish(self.start())


def parse_retry_delays(text):
    """The retry schedule of a run's DWOP_RETRY_DELAYS ("0.2,0.5,1.5": the seconds before each further
    try), RETRY_DELAYS when it is not set; raises ValueError naming what is wrong."""
    if not text:
        return RETRY_DELAYS
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        delays = None
    if delays is None or len(delays) > MAX_RETRIES or not all(0 <= d <= 600 for d in delays):
        message = "DWOP_RETRY_DELAYS is not a comma-separated list of at most %d delays of 0 to 600 seconds: %.80s"
        raise ValueError(message % (MAX_RETRIES, text))
    return delays


def transfer_all(transfers, while_waiting=None, delays=RETRY_DELAYS):
    """Moves every transfer; returns [(transfer, error)] for those that failed for good.

    First tries go in batches whose requests are all sent before any response is read, so the server
    works on them together; while_waiting() runs in the first such gap. Retries go one at a time, after
    each of delays (seconds) in turn.
    """
    failed = []
    for first in range(0, len(transfers), MAX_CONCURRENT):
        batch = transfers[first : first + MAX_CONCURRENT]
        started = []
        for transfer in batch:
            try:
                started.append(transfer.start())
            except (HttpError, OSError, ValueError) as e:
                started.append(e)
        if while_waiting is not None:
            while_waiting()
            while_waiting = None
        for transfer, sock in zip(batch, started):
            try:
                if isinstance(sock, Exception):
                    raise sock
                transfer.finish(sock)
            except (HttpError, OSError, ValueError) as e:
                try:
                    with_retries(transfer.run_once, e, delays)
                except (HttpError, OSError, ValueError) as final:
                    failed.append((transfer, final))
    if while_waiting is not None:
        while_waiting()
    return failed


def with_retries(attempt, error=None, delays=RETRY_DELAYS):
    """Calls attempt() until it succeeds, fails for good, or the retries (one after each delay) run out.

    error is a failure of a first try already made elsewhere.
    """
    delays = iter(delays)
    while True:
        if error is not None:
            delay = next(delays, None)
            if delay is None or not is_transient(error):
                raise error
            time.sleep(delay)
        try:
            return attempt()
        except (HttpError, OSError) as e:
            error = e


def split_url(url):
    """(scheme, host, port, request target) of an absolute http(s) URL."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL: %.80s" % url)
    rest = rest.partition("#")[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut].rpartition("@")[2], rest[cut:]
    if not path.startswith("/"):
        path = "/" + path
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
    if not host:
        raise ValueError("no host in URL: %.80s" % url)
    return scheme, host, int(port) if port else (443 if scheme == "https" else 80), path


def host_header(host, port):
    name = "[%s]" % host if ":" in host else host
    return name if port in (80, 443) else "%s:%d" % (name, port)


def ascii_name(host):
    """The host as bytes. A str host would go through the idna codec, which imports re and unicodedata
    (~10 ms), even for plain ASCII; so only a non-ASCII name does."""
    return host.encode("ascii") if host.isascii() else host.encode("idna")


def request_target(path):
    """The path as bytes, with anything outside printable ASCII percent-encoded."""
    raw = path.encode("utf-8")
    if raw.isascii() and b" " not in raw:
        return raw
    return b"".join(b"%%%02X" % c if c > 0x7E or c <= 0x20 else bytes((c,)) for c in raw)


def connect(scheme, host, port):
    if scheme == "https":
        import socket
        import ssl

        sock = socket.create_connection((host, port), TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    error = None
    addresses = _socket.getaddrinfo(ascii_name(host), port, 0, _socket.SOCK_STREAM)
    for family, type_, proto, _, address in addresses:
        sock = _socket.socket(family, type_, proto)
        try:
            sock.settimeout(TIMEOUT)
            sock.connect(address)
            # Headers and body go in separate sends: without this, Nagle plus delayed ACK costs 40 ms.
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            return sock
        except OSError as e:
            error = e
            sock.close()
    raise error or OSError("no address for %s" % host)


def request_head(method, host, port, path):
    """The request line and the headers every request has (the caller adds its own and the blank line)."""
    return b"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: dwop-worker\r\nAccept-Encoding: identity\r\n" % (
        method.encode("ascii"),
        request_target(path),
        ascii_name(host_header(host, port)),
    )


def request(method, url, headers, body, timeout=TIMEOUT):
    """One request with a small body in memory (no retries); the body of a 2xx answer, else HttpError."""
    scheme, host, port, path = split_url(url)
    sock = connect(scheme, host, port)
    try:
        sock.settimeout(timeout)
        head = request_head(method, host, port, path)
        for name, value in headers.items():
            head += b"%s: %s\r\n" % (name.encode("ascii"), value.encode("latin-1"))
        sock.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        response = Response(sock)
        status, response_headers = response.head()
        data = b"".join(response.body(response_headers))
        if not 200 <= status < 300:
            raise HttpError(status, data[:300].decode("utf-8", "replace").strip())
        return data
    finally:
        sock.close()


def range_header(byte_range):
    """The Range header line asking for (offset, length), or nothing for the whole object."""
    if byte_range is None:
        return b""
    offset, length = byte_range
    return b"Range: bytes=%d-%d\r\n" % (offset, offset + length - 1)


def check_range(status, headers, byte_range):
    """Raises ValueError unless the answer is exactly the range asked for: a storage that ignored the
    Range header (200) or answered another range would hand the worker some other task's code."""
    offset, length = byte_range
    wanted = "bytes %d-%d/" % (offset, offset + length - 1)
    got = headers.get("content-range", "")
    if status != 206 or not got.startswith(wanted):
        raise ValueError(
            "asked for %s but the storage answered %d%s" % (wanted[:-1], status, (" with " + got) if got else "")
        )


def send_request(method, url, body_fd, extra_headers=b""):
    """Connects and sends a request (with body_fd's content as the body); returns the socket."""
    scheme, host, port, path = split_url(url)
    sock = connect(scheme, host, port)
    try:
        head = request_head(method, host, port, path) + extra_headers
        if body_fd is None:
            sock.sendall(head + b"Connection: close\r\n\r\n")
            return sock
        size = os.fstat(body_fd).st_size
        head += b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % size
        head += b"Connection: close\r\n\r\n"
        try:
            send_file(sock, body_fd, head)
        except OSError as send_error:
            # The server may have answered (403, 413) and closed early: report its answer if it did.
            try:
                response = Response(sock)
                status, headers = response.head()
            except (OSError, ValueError):
                raise send_error from None
            raise HttpError(status, answer_detail(response, headers)) from None
        return sock
    except BaseException:
        sock.close()
        raise


def send_file(sock, fd, head):
    os.lseek(fd, 0, os.SEEK_SET)
    data = head + os.read(fd, CHUNK)
    while data:
        sock.sendall(data)
        data = os.read(fd, CHUNK)


def read_response(sock, method, url, sink_fd, redirects=MAX_REDIRECTS, byte_range=None):
    """Reads the answer to a request sent on sock, writing a 2xx body to sink_fd; closes sock. With
    byte_range, only a 206 of exactly that range is accepted."""
    try:
        response = Response(sock)
        status, headers = response.head()
        if status in (301, 302, 303, 307, 308) and method == "GET" and redirects and "location" in headers:
            location = headers["location"]
            if location.startswith("/"):
                scheme, host, port, _ = split_url(url)
                location = "%s://%s%s" % (scheme, host_header(host, port), location)
            sock.close()
            sock = send_request("GET", location, None, range_header(byte_range))
            return read_response(sock, method, location, sink_fd, redirects - 1, byte_range)
        if not 200 <= status < 300:
            raise HttpError(status, answer_detail(response, headers))
        if byte_range is not None:
            check_range(status, headers, byte_range)
        received = 0
        for chunk in response.body(headers):
            received += len(chunk)
            if sink_fd is not None:
                write_all(sink_fd, chunk)
        if byte_range is not None and received != byte_range[1]:
            raise ValueError("asked for %d bytes but the storage sent %d" % (byte_range[1], received))
    finally:
        sock.close()


def answer_detail(response, headers):
    """The first 300 bytes of an error answer's body (storage says why there: EntityTooLarge, expired)."""
    detail = b""
    try:
        for chunk in response.body(headers):
            detail += chunk
            if len(detail) > 300:
                break
    except (OSError, ValueError):
        pass
    return detail[:300].decode("utf-8", "replace").strip()


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Response:
    """Reads one HTTP/1.1 response from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(CHUNK)
        if not data:
            raise ConnectionResetError("connection closed by the server")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ConnectionError("response header line too long")
            self.fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def head(self):
        """(status, headers with lower-case names), skipping 1xx answers."""
        while True:
            status_line = self.line().split(None, 2)
            if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
                raise ConnectionError("bad response from the server")
            if not status_line[1].isdigit():
                raise ConnectionError("bad response from the server")
            status = int(status_line[1])
            headers = {}
            while True:
                line = self.line()
                if not line:
                    break
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            if status >= 200:
                return status, headers

    def body(self, headers):
        """Yields the body's chunks."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self.line().partition(b";")[0], 16)
                if size == 0:
                    while self.line():  # trailers
                        pass
                    return
                yield from self.exactly(size)
                self.line()
        elif "content-length" in headers:
            yield from self.exactly(int(headers["content-length"]))
        else:
            if self.buf:
                yield self.buf
                self.buf = b""
            while data := self.sock.recv(CHUNK):
                yield data

    def exactly(self, size):
        while size > 0:
            if not self.buf:
                self.fill()
            chunk, self.buf = self.buf[:size], self.buf[size:]
            size -= len(chunk)
            yield chunk
