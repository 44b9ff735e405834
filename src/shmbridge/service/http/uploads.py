"""The image bytes of an OCR request and what they claim to be: a raw body or a multipart file part.

``POST /api/v1/ocr`` takes the image as the body (``curl --data-binary @x.png``) or as the one file of a
``multipart/form-data`` form (``curl -F file=@x.png``, FastAPI's ``UploadFile`` convention). Either way the
route gets an ``Upload``: the bytes and the media type that came with them. A missing or generic type
(none, ``application/octet-stream``, or curl's default ``application/x-www-form-urlencoded``) means "look
at the bytes": ``require_image`` sniffs the magic number and answers 415 when it is no image we read.

Multipart costs one more copy (Starlette's form parser spools the part, then it is read back); a raw body
lands in one buffer. OCR options stay in the query string for both. Nothing here decodes pixels or
raises anything but ``ShmBridgeError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ...errors import FrameTooLarge, InvalidRequest, UnsupportedMedia
from ...wire.media import ALLOWED_FORMATS, RAW_MEDIA_TYPE
from .context import read_body
from .images import IMAGE_MEDIA_TYPES
from .sniff import sniff_format

MULTIPART = "multipart/form-data"
#: Types that say nothing about the bytes: the magic number decides.
GENERIC_MEDIA_TYPES = frozenset({"", RAW_MEDIA_TYPE, "application/x-www-form-urlencoded"})
#: Non-file form fields a client may send next to the file (and that are ignored); the rest are refused.
_MAX_FORM_FIELDS = 16


@dataclass(slots=True)
class Upload:
    """The image bytes and the media type declared for them (``""`` when none was)."""

    body: bytes | bytearray
    media: str

    @property
    def generic(self) -> bool:
        return self.media in GENERIC_MEDIA_TYPES


def media_type(value: str | None) -> str:
    """``image/png; charset=x`` -> ``image/png``; ``None`` -> ``""``."""
    return (value or "").split(";")[0].strip().lower()


def check_media(media: str) -> None:
    """415 for a declared type that is neither an image, raw pixels, generic, nor a multipart form."""
    if media == MULTIPART or media in GENERIC_MEDIA_TYPES or media in IMAGE_MEDIA_TYPES:
        return
    raise UnsupportedMedia(
        f"content type {media!r} is not an image ({', '.join(ALLOWED_FORMATS)}), {RAW_MEDIA_TYPE} "
        f"or {MULTIPART}; send the file as the body or as a form file (curl -F file=@image.png)"
    )


async def read_upload(request: Request, limit: int) -> Upload:
    """The body, or the single file of a multipart form, at most ``limit`` bytes."""
    media = media_type(request.headers.get("content-type"))
    if media != MULTIPART:
        return Upload(await read_body(request, limit), media)
    try:
        form = await request.form(max_files=1, max_fields=_MAX_FORM_FIELDS)
    except HTTPException as exc:  # Starlette's answer to a malformed form or one over the counts
        raise InvalidRequest(f"bad multipart form: {exc.detail}") from None
    try:
        files = [value for value in form.values() if isinstance(value, UploadFile)]
        if not files:
            raise InvalidRequest(
                "the multipart form has no file: send the image as a file field (curl -F file=@image.png); "
                "OCR options go in the query string"
            )
        upload = files[0]
        part_media = media_type(upload.content_type)
        check_media(part_media)
        if part_media == MULTIPART:
            raise UnsupportedMedia("a nested multipart form is not an image")
        if upload.size is not None and upload.size > limit:
            raise FrameTooLarge(f"the uploaded file of {upload.size} bytes exceeds {limit} (--max-frame-bytes)")
        return Upload(await upload.read(), part_media)
    finally:
        await form.close()


def require_image(upload: Upload) -> None:
    """For a generic type, the bytes must start like one of the formats we decode; else 415."""
    if upload.generic and upload.body and sniff_format(upload.body) is None:
        raise UnsupportedMedia(
            f"the body is not a {', '.join(ALLOWED_FORMATS)} file (judged by its first bytes); "
            "raw pixels need their shape: ?height=H&width=W&channels=C"
        )
