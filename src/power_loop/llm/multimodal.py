"""Content parts for multimodal user input: images and PDF documents.

Parts are OpenAI-shaped dicts, the provider-neutral form stored with the message:
``{"type": "text", "text"}``, ``{"type": "image_url", "image_url": {"url"}}`` and
``{"type": "file", "file": {"filename", "file_data"}}``. The OpenAI-compatible transport
sends them as they are; the Anthropic transport maps them to ``image`` and ``document``
blocks. Build a message with ``user_message(text, *parts)`` and pass it to ``send``.

Invariants:
- Bytes and paths become ``data:`` URLs (base64); ``http(s)`` URLs and existing
  ``data:`` URLs are kept as given, so nothing is downloaded here.
- An image's MIME type comes from ``mime=``, else its magic bytes, else the file suffix;
  an unknown type raises rather than sending something the provider will refuse.
- PDF text is extracted with ``pypdf`` (extra ``pdf``), imported on first use.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import Path

from power_loop.contracts.errors import InvalidArgumentError, MissingExtraError
from power_loop.contracts.json import JSONObject, Message

__all__ = ["image_part", "pdf_file_part", "pdf_part", "pdf_text", "text_part", "user_message"]

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def _sniff(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _read(source: bytes | str | Path, what: str) -> tuple[bytes, str | None]:
    """``(bytes, file name)`` of a bytes value or a path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(source)
    try:
        return path.read_bytes(), path.name
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from exc


def data_url(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,<data>``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def text_part(text: str) -> JSONObject:
    """``{"type": "text", "text": text}``."""
    return {"type": "text", "text": text}


def image_part(
    source: bytes | str | Path, *, mime: str | None = None, detail: str | None = None
) -> JSONObject:
    """An ``image_url`` part from image bytes, a file path, or an ``http(s)``/``data:`` URL.

    Args:
        source: the image bytes, a path to an image file, or a URL (kept as given).
        mime: the MIME type; default from the bytes' signature, else the file suffix.
        detail: OpenAI's ``detail`` hint (``low``, ``high``, ``auto``); other providers ignore it.

    Returns:
        ``{"type": "image_url", "image_url": {"url": ..., "detail"?: ...}}``.

    Raises:
        InvalidArgumentError: (``invalid_argument``) an unreadable file or an unknown image type.

    Example:
        >>> image_part("https://example.com/cat.png")["image_url"]["url"]
        'https://example.com/cat.png'
    """
    if isinstance(source, str) and source.startswith(("http://", "https://", "data:")):
        url = source
    else:
        data, name = _read(source, "image")
        kind = mime or _sniff(data) or (mimetypes.guess_type(name)[0] if name else None)
        if kind not in _IMAGE_TYPES:
            raise InvalidArgumentError(
                f"cannot tell the image type of {name or 'the given bytes'} (got {kind!r}):"
                f" pass mime= one of {', '.join(sorted(_IMAGE_TYPES))}")
        url = data_url(data, kind)
    inner: JSONObject = {"url": url}
    if detail is not None:
        inner["detail"] = detail
    return {"type": "image_url", "image_url": inner}


def pdf_text(source: bytes | str | Path) -> str:
    """The text of every page of a PDF, pages separated by blank lines.

    Raises:
        MissingExtraError: (``extra.missing``) ``pypdf`` is not installed (extra ``pdf``).
        InvalidArgumentError: (``invalid_argument``) unreadable file or not a PDF.
    """
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:
        raise MissingExtraError("pdf", feature="PDF text extraction", module="pypdf") from exc
    data, name = _read(source, "PDF")
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise InvalidArgumentError(f"{name or 'the given bytes'} is not a readable PDF: {exc}") from exc
    return "\n\n".join(p for p in pages if p)


def pdf_part(
    source: bytes | str | Path, *, name: str | None = None, max_chars: int | None = None
) -> JSONObject:
    """A text part holding a PDF's extracted text, wrapped in ``<document name=…>`` tags.

    Works with every provider. ``max_chars`` clips long documents (a marker says so).

    Raises:
        MissingExtraError: (``extra.missing``) ``pypdf`` is not installed (extra ``pdf``).
        InvalidArgumentError: (``invalid_argument``) unreadable file or not a PDF.
    """
    text = pdf_text(source)
    label = name or (Path(source).name if isinstance(source, (str, Path)) else "document.pdf")
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + f"\n[… clipped at {max_chars} characters]"
    return text_part(f'<document name="{label}">\n{text}\n</document>')


def pdf_file_part(source: bytes | str | Path, *, filename: str | None = None) -> JSONObject:
    """The PDF itself as a ``file`` part, for providers that read PDFs natively.

    OpenAI's Chat Completions takes it as is; the Anthropic transport sends a ``document``
    block. Many OpenAI-compatible servers do not accept it: prefer ``pdf_part`` there.

    Raises:
        InvalidArgumentError: (``invalid_argument``) unreadable file or not a PDF.
    """
    data, name = _read(source, "PDF")
    if not data.startswith(b"%PDF"):
        raise InvalidArgumentError(f"{name or 'the given bytes'} is not a PDF (no %PDF header)")
    return {"type": "file", "file": {"filename": filename or name or "document.pdf",
                                     "file_data": data_url(data, "application/pdf")}}


def user_message(text: str | None = None, *parts: JSONObject) -> Message:
    """``{"role": "user", "content": [text part?, *parts]}``, ready for ``send``."""
    content = ([text_part(text)] if text else []) + list(parts)
    if not content:
        raise InvalidArgumentError("user_message needs some text or at least one part")
    return {"role": "user", "content": content}
