"""A multipart upload streamed to a private file, counted while it arrives: never held in memory whole.

:func:`receive_video` parses ``multipart/form-data`` with python-multipart's streaming parser as the body comes
in, writes the part named ``file`` to an already-open private file, and stops with :class:`UploadError` (413)
as soon as the part grows past the limit. Every refusal is an :class:`UploadError` carrying the HTTP status
and a message meant for the client (no server path in it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

FIELD = "file"


class UploadError(Exception):
    """An upload refused with ``status`` and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def too_large(limit: int) -> UploadError:
    return UploadError(413, f"the upload is larger than this server's limit of {limit / 2**20:g} MB "
                            "(actionlab serve --max-upload-mb)")


class _FilePart:
    """Callbacks of the streaming parser: the ``file`` part goes to ``dest``, counted against ``limit``."""

    def __init__(self, dest: BinaryIO, limit: int) -> None:
        self.dest, self.limit = dest, limit
        self.size, self.found, self.filename = 0, False, ""
        self._field, self._value, self._headers = b"", b"", {}  # type: ignore[var-annotated]
        self._active = False

    def callbacks(self) -> dict[str, object]:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data}

    def _begin(self) -> None:
        self._headers, self._active = {}, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == FIELD.encode() and not self.found:
            self._active = self.found = True
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._active:
            return
        self.size += end - start
        if self.size > self.limit:
            raise too_large(self.limit)
        self.dest.write(data[start:end])


async def receive_video(content_type: str, body: AsyncIterator[bytes], dest: BinaryIO, limit: int) -> tuple[str, int]:
    """Stream the ``file`` part of a multipart body into ``dest``; returns ``(client's file name, bytes)``."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, f"send the video as multipart/form-data in a field named {FIELD!r} "
                               f"(got Content-Type {content_type or 'none'!r})")
    part = _FilePart(dest, limit)
    parser = MultipartParser(params[b"boundary"], part.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as e:  # a malformed body: the parser's own words, no path in them
        raise UploadError(400, f"the multipart body could not be parsed: {e}") from None
    if not part.found:
        raise UploadError(422, f"no field named {FIELD!r} in the upload: send the video as {FIELD}=@clip.mp4")
    if part.size == 0:
        raise UploadError(422, "the uploaded file is empty (0 bytes)")
    return part.filename, part.size
