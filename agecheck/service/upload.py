"""Reading a photo upload safely: size limits while reading, allowed types, pixel count from the header.

Hostile input is expected: the body is read into memory only up to ``max_bytes`` (413 beyond),
only image content types are accepted (415), the pixel count is checked from the header before
decoding (413: decompression bombs), and only the declared format's decoder ever sees the bytes.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from agecheck.config import PhotoLimits
from agecheck.data.images import PhotoRejected, open_photo

#: Content types accepted for the photo, and the Pillow decoder allowed to open each.
IMAGE_TYPES = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
}
#: Room for the multipart framing around the photo.
MULTIPART_OVERHEAD = 64 * 1024


class BadRequest(Exception):
    """A request the client must fix: answered with ``status`` and ``{"error", "detail"}``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, "too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, "too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def multipart_photo(body: bytes, boundary: bytes, field: str = "photo") -> tuple[bytes, str]:
    """The content and content type of the form field ``field`` (parsed in memory)."""
    parts: list[dict[str, Any]] = []
    header: list[bytes] = [b"", b""]

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": []})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header[0].decode("latin-1").lower()] = header[1]
        header[0], header[1] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].append(data[start:end])

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except Exception as err:  # noqa: BLE001 - python-multipart raises several types
        raise BadRequest(400, "bad_multipart", f"the multipart body cannot be parsed: {err}") from None
    for part in parts:
        _, options = parse_options_header(part["headers"].get("content-disposition", b""))
        if options.get(b"name", b"").decode("latin-1") == field:
            content_type, _ = parse_options_header(part["headers"].get("content-type", b""))
            return b"".join(part["data"]), content_type.decode("latin-1").lower()
    raise BadRequest(422, "missing_photo", f"the form has no field '{field}' (send the photo as '{field}')")


def check_type(content_type: str) -> str:
    """The Pillow format allowed for ``content_type``; 415 for anything but a supported image."""
    if content_type not in IMAGE_TYPES:
        accepted = ", ".join(sorted(IMAGE_TYPES))
        raise BadRequest(
            415, "unsupported_media_type", f"content type '{content_type or 'none'}' is not one of {accepted}"
        )
    return IMAGE_TYPES[content_type]


async def read_photo_upload(request: Request, limits: PhotoLimits) -> tuple[bytes, str]:
    """The photo's bytes and format from a raw image body or a multipart form."""
    raw_type, options = parse_options_header(request.headers.get("content-type", ""))
    content_type = raw_type.decode("latin-1").lower()
    if content_type == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest(400, "bad_multipart", "multipart/form-data without a boundary")
        body = await read_body(request, limits.max_bytes + MULTIPART_OVERHEAD)
        data, content_type = multipart_photo(body, boundary)
    else:
        check_type(content_type)  # before reading a body that will be refused anyway
        data = await read_body(request, limits.max_bytes)
    image_format = check_type(content_type)
    if not data:
        raise BadRequest(400, "empty_body", "the photo is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise BadRequest(
            413, "too_large", f"photo of {len(data)} bytes exceeds the limit of {limits.max_bytes}"
        )
    return data, image_format


def check_header(data: bytes, image_format: str, limits: PhotoLimits) -> None:
    """Refuse, from the header alone, photos of another format than declared or with too many pixels.

    Only the declared format's decoder is tried, so no other Pillow plugin ever sees the bytes.
    """
    try:
        open_photo(data, limits, (image_format,))
    except (OSError, SyntaxError, ValueError):
        raise PhotoRejected("not_an_image", f"not a readable {image_format} image") from None
