"""HTTP request bodies read as they arrive, and multipart bodies parsed from them, as Go does.

kubo's commands read their request body while the client still sends it (``dag/import`` stores a
CAR's blocks as they come). :class:`RequestBody` is that body: de-chunked (``Transfer-Encoding:
chunked``) or ``Content-Length`` long, read on demand. :class:`MultipartReader` is Go's
``mime/multipart.Reader`` over any such stream: each :class:`MultipartPart` is read in turn, and a
part's bytes are handed out before the rest of the body has arrived. Errors are Go's, raised as
:class:`MultipartError` when the parser reaches them.
"""

from __future__ import annotations

import io
import quopri
import re
import urllib.parse
from typing import Any, BinaryIO, Callable, Iterator

#: The socket read size (and how far ahead of the reader the multipart parser buffers).
READ_SIZE = 1 << 20

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class MultipartError(Exception):
    """A body Go's multipart reader refuses (``message`` is Go's error text)."""

    def __init__(self, message: str):
        """The error text."""
        super().__init__(message)
        self.message = message


def read_to_end(source: Any) -> bytes:
    """What is left in ``source`` (anything with ``read(size)``, b"" at its end)."""
    out = bytearray()
    while data := source.read(READ_SIZE):
        out += data
    return bytes(out)


class RequestBody:
    """An HTTP/1.1 request body read from the connection on demand.

    ``chunked``: ``Transfer-Encoding: chunked`` (trailers are read and dropped); else ``length``
    bytes. A connection closed early ends the body short (the reader sees EOF).
    """

    def __init__(self, rfile: BinaryIO, length: int, chunked: bool):
        """Read from ``rfile``."""
        self.rfile = rfile
        self.chunked = chunked
        self._left = 0 if chunked else max(length, 0)  # in the current chunk, or in the body
        self.eof = not chunked and length <= 0

    def read(self, size: int = READ_SIZE) -> bytes:
        """Up to ``size`` bytes (at least one unless at the end); ``b""`` at the end."""
        while not self.eof and self._left == 0:
            if not self.chunked:
                self.eof = True
                break
            line = self.rfile.readline()
            try:
                chunk = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.eof = True  # a broken chunk header: nothing more can be read
                break
            if chunk == 0:
                while self.rfile.readline().strip():
                    pass
                self.eof = True
                break
            self._left = chunk
        if self.eof:
            return b""
        data = self.rfile.read1(min(size, self._left))
        if not data:
            self.eof = True
            return b""
        self._left -= len(data)
        if self.chunked and self._left == 0:
            self.rfile.readline()
        return data

    def discard(self, limit: int) -> bool:
        """Read and drop up to ``limit`` bytes; True if the body ended within them."""
        while limit > 0 and (data := self.read(min(limit, READ_SIZE))):
            limit -= len(data)
        return self.eof


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``mime.ParseMediaType``: the lower-case media type and its parameters ("" when invalid)."""
    head, _, rest = value.partition(";")
    mediatype = head.strip().lower()
    if not mediatype or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9a-z]+(/[!#$%&'*+\-.^_`|~0-9a-z]+)?", mediatype):
        return "", {}
    params: dict[str, str] = {}
    pos = 0
    rest = ";" + rest if rest else ""
    while pos < len(rest):
        m = re.match(r"\s*;\s*", rest[pos:])
        if not m:
            return mediatype, params  # Go: ErrInvalidMediaParameter, the type is still returned
        pos += m.end()
        if pos >= len(rest):
            break
        key = _TOKEN.match(rest, pos)
        if not key or rest[key.end():key.end() + 1] != "=":
            return mediatype, params
        pos = key.end() + 1
        if rest[pos:pos + 1] == '"':
            value_chars = []
            pos += 1
            while pos < len(rest) and rest[pos] != '"':
                if rest[pos] == "\\" and pos + 1 < len(rest):
                    pos += 1
                value_chars.append(rest[pos])
                pos += 1
            if pos >= len(rest):
                return mediatype, params
            pos += 1
            val = "".join(value_chars)
        else:
            tok = _TOKEN.match(rest, pos)
            if not tok:
                return mediatype, params
            val = tok.group(0)
            pos = tok.end()
        params[key.group(0).lower()] = val
    return mediatype, params


class MultipartPart:
    """One body part: lower-case headers and its bytes, readable as they arrive (``read``) or whole
    (``body``; quoted-printable decoded, as Go does). Valid until the next part is asked for."""

    def __init__(self, headers: dict[str, str], source: Any):
        """``source``: an object with ``read(size)``."""
        self.headers = headers
        self._source = source
        self._body: bytes | None = None

    def read(self, size: int = READ_SIZE) -> bytes:
        """Up to ``size`` bytes of the part; ``b""`` at its end."""
        return self._source.read(size)

    @property
    def body(self) -> bytes:
        """The part's (remaining) bytes."""
        if self._body is None:
            self._body = read_to_end(self)
        return self._body

    @property
    def filename(self) -> str:
        """boxo's ``fileName``: the query-unescaped ``filename``, cleaned below ``/``."""
        name = parse_media_type(self.headers.get("content-disposition", ""))[1].get("filename", "")
        try:
            name = urllib.parse.unquote_plus(name, errors="strict")
        except UnicodeDecodeError:
            pass
        return clean_path("/" + name)

    @property
    def media_type(self) -> str:
        """The part's media type ("" when it has none)."""
        return parse_media_type(self.headers.get("content-type", ""))[0] if self.headers.get("content-type") else ""

    @property
    def is_directory(self) -> bool:
        """``multipart/form-data`` and ``application/x-directory`` parts are directories."""
        return self.media_type in ("multipart/form-data", "application/x-directory")


def clean_path(path: str) -> str:
    """Go's ``path.Clean`` for an absolute path."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "/" + "/".join(out)


class MultipartReader:
    """Go's ``multipart.Reader`` over a stream: :meth:`parts` yields each part, whose bytes are read
    from the stream on demand.

    Errors (:class:`MultipartError`, or what ``error`` makes): ``multipart: NextPart: EOF`` when no boundary or no closing
    boundary follows, ``unexpected EOF`` for a part cut off mid-body, ``multipart: NextPart:
    malformed MIME header …`` for bad part headers. A part's delimiter is a line end, ``--`` and
    the boundary, followed by ``--``, whitespace, a line end or the end of the body.
    """

    def __init__(self, source: Any, boundary: str, error: Callable[[str], Exception] = MultipartError):
        """``source``: an object with ``read(size)`` (b"" at its end), or bytes; ``error`` makes the
        exception raised from Go's error text (a command error, in the RPC stand-in)."""
        self.error = error
        self.source = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        self.dash = b"--" + boundary.encode("latin-1")
        self.delimiter = b"\n" + self.dash
        self.buffer = bytearray()
        self.base = 0  # stream offset of buffer[0]
        self.pos = 0  # stream offset the parser (or the current part) has reached
        self.eof = False
        self.parts_done = False

    # -- the buffer, in stream offsets
    @property
    def end(self) -> int:
        """Stream offset just past the buffered bytes."""
        return self.base + len(self.buffer)

    def _fill(self, keep_from: int) -> bool:
        """Read more, dropping bytes before ``keep_from``; False at the end of the stream."""
        if self.eof:
            return False
        drop = keep_from - self.base
        if drop > READ_SIZE:
            del self.buffer[:drop]
            self.base += drop
        data = self.source.read(READ_SIZE)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _find(self, needle: bytes, start: int) -> int:
        """Stream offset of ``needle`` at or after ``start`` in the buffer, or -1."""
        index = self.buffer.find(needle, max(start - self.base, 0))
        return -1 if index < 0 else self.base + index

    def _slice(self, start: int, stop: int) -> bytes:
        return bytes(self.buffer[start - self.base:stop - self.base])

    def _line(self) -> bytes:
        """The next line, its ``\\n`` included (what is left without one at the end; b"" at the end)."""
        while (nl := self._find(b"\n", self.pos)) < 0 and self._fill(self.pos):
            pass
        stop = self.end if nl < 0 else nl + 1
        line, self.pos = self._slice(self.pos, stop), stop
        return line

    # -- parts
    def parts(self) -> Iterator[MultipartPart]:
        """Each part in turn; reading a part's bytes is only valid until the next is asked for."""
        while True:  # preamble: skip lines until the first boundary line
            line = self._line()
            if not line:
                raise self.error("multipart: NextPart: EOF")
            stripped = line.rstrip(b"\r\n").rstrip(b" \t")
            if stripped == self.dash:
                break
            if stripped == self.dash + b"--":
                return
            if not line.endswith(b"\n"):
                raise self.error("multipart: NextPart: EOF")
        while True:
            headers = self._headers()
            part = _PartBody(self)
            yield self._decoded(headers, part)
            part.skip()
            if self._at(part.resume, 2) == b"--":
                return
            self.pos = part.resume
            if not self._line().endswith(b"\n"):
                raise self.error("multipart: NextPart: EOF")

    def _at(self, offset: int, count: int) -> bytes:
        """Up to ``count`` bytes at ``offset`` (fewer only at the end of the stream)."""
        while self.end < offset + count and self._fill(min(offset, self.pos)):
            pass
        return self._slice(offset, min(offset + count, self.end))

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        last = None
        while True:
            raw = self._line()
            if not raw.endswith(b"\n"):
                raise self.error("multipart: NextPart: EOF")
            line = raw[:-1].rstrip(b"\r")
            if not line:
                return headers
            if line[:1] in (b" ", b"\t") and last is not None:
                headers[last] += " " + line.strip().decode("latin-1")
                continue
            key, sep, value = line.partition(b":")
            if not sep or not key or key != key.strip() or not _TOKEN.fullmatch(key.decode("latin-1")):
                raise self.error(f"multipart: NextPart: malformed MIME header line: {line.decode('latin-1')}")
            last = key.decode("latin-1").lower()
            headers[last] = value.strip().decode("latin-1") if last not in headers else headers[last]

    @staticmethod
    def _decoded(headers: dict[str, str], part: "_PartBody") -> MultipartPart:
        """Go decodes a quoted-printable part (and drops the header)."""
        if headers.get("content-transfer-encoding", "").lower() != "quoted-printable":
            return MultipartPart(headers, part)
        del headers["content-transfer-encoding"]
        return MultipartPart(headers, io.BytesIO(quopri.decodestring(read_to_end(part))))


class _PartBody:
    """A part's bytes in a :class:`MultipartReader`'s stream, up to its delimiter."""

    def __init__(self, reader: MultipartReader):
        """The part starts at the reader's position (just after its headers' blank line)."""
        self.reader = reader
        self.start = reader.pos
        # the blank line's "\n" may begin the delimiter itself (an empty part)
        self.scan_from = self.start - 1
        self.safe = self.start  # bytes before this offset are the part's
        self.stop: int | None = None  # where the part ends, once its delimiter is found
        self.resume = 0  # just past the delimiter's boundary, once found

    def read(self, size: int) -> bytes:
        """Up to ``size`` of the part's bytes; b"" at its end."""
        reader = self.reader
        while reader.pos >= self.safe and self.stop is None:
            self._scan()
        end = self.stop if self.stop is not None else self.safe
        stop = min(end, reader.pos + size)
        if stop <= reader.pos:
            return b""
        data = reader._slice(reader.pos, stop)
        reader.pos = stop
        return data

    def skip(self) -> None:
        """Read past what is left of the part."""
        while self.read(READ_SIZE):
            pass

    def _scan(self) -> None:
        """Find the delimiter in what is buffered, or make more bytes safe to hand out (reading on)."""
        reader = self.reader
        dash = len(reader.dash)
        while True:
            index = reader._find(reader.delimiter, self.scan_from)
            if index >= 0:
                after = reader._at(index + 1 + dash, 2)
                if after[:2] == b"--" or after[:1] in (b"\r", b"\n", b" ", b"\t") or after == b"":
                    carriage = index > self.start and reader._slice(index - 1, index) == b"\r"
                    self.stop = max(index - 1 if carriage else index, self.start)
                    self.resume = index + 1 + dash
                    return
                self.scan_from = index + 1
                continue
            # no delimiter in the buffer: all but its last len(delimiter) bytes are the part's
            # (the last may start a delimiter, and the byte before it may be its "\r")
            self.scan_from = max(self.scan_from, reader.end - len(reader.delimiter) + 1)
            safe = reader.end - len(reader.delimiter)
            if safe > self.safe:
                self.safe = safe
                return
            if not reader._fill(min(reader.pos, self.scan_from - 1)):
                raise reader.error("unexpected EOF")
