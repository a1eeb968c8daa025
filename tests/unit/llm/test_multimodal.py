"""Content parts for images and PDFs, built from bytes, paths and URLs."""

from __future__ import annotations

import base64
import struct
import sys
import zlib
from pathlib import Path

import pytest

from power_loop import image_part, pdf_file_part, pdf_part, user_message
from power_loop.contracts.errors import InvalidArgumentError, MissingExtraError
from power_loop.llm.multimodal import pdf_text


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG, written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def tiny_pdf(*pages: str) -> bytes:
    """A valid PDF with one line of text per page, written by hand (xref offsets included)."""
    count = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {count} >>"]
    font = 3 + 2 * count
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R"
                       f" /Resources << /Font << /F1 {font} 0 R >> >> >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_image_bytes_and_paths_become_data_urls(tmp_path: Path) -> None:
    png = tiny_png()
    part = image_part(png)
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == png
    path = tmp_path / "dot.png"
    path.write_bytes(png)
    assert image_part(path) == part == image_part(str(path))
    assert image_part(png, detail="low")["image_url"]["detail"] == "low"
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(b"not really a jpeg")
    assert image_part(jpeg)["image_url"]["url"].startswith("data:image/jpeg;base64,")  # from the suffix
    assert image_part(b"raw", mime="image/webp")["image_url"]["url"].startswith("data:image/webp;base64,")


def test_urls_are_kept_as_given() -> None:
    for url in ("https://example.com/cat.png", "http://example.com/x", "data:image/gif;base64,R0lGOD"):
        assert image_part(url) == {"type": "image_url", "image_url": {"url": url}}


def test_unknown_images_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot tell the image type"):
        image_part(b"\x00\x01 mystery")
    with pytest.raises(InvalidArgumentError, match="cannot read image"):
        image_part(tmp_path / "missing.png")


def test_pdf_text_is_extracted_per_page(tmp_path: Path) -> None:
    pdf = tiny_pdf("Hello PDF", "Second page")
    assert pdf_text(pdf) == "Hello PDF\n\nSecond page"
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    part = pdf_part(path)
    assert part == {"type": "text", "text": '<document name="report.pdf">\nHello PDF\n\nSecond page\n</document>'}
    clipped = pdf_part(pdf, name="r.pdf", max_chars=5)["text"]
    assert clipped.startswith('<document name="r.pdf">\nHello\n[… clipped at 5 characters]')


def test_pdf_file_part_carries_the_document(tmp_path: Path) -> None:
    pdf = tiny_pdf("Hi")
    part = pdf_file_part(pdf, filename="hi.pdf")
    assert part["file"]["filename"] == "hi.pdf"
    assert base64.b64decode(part["file"]["file_data"].split(",", 1)[1]) == pdf
    with pytest.raises(InvalidArgumentError, match="not a PDF"):
        pdf_file_part(b"hello")
    with pytest.raises(InvalidArgumentError, match="not a readable PDF"):
        pdf_text(b"%PDF-1.4 broken")


def test_pdf_needs_the_pdf_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)
    with pytest.raises(MissingExtraError, match=r"power-loop\[pdf\]") as info:
        pdf_part(tiny_pdf("x"))
    assert info.value.extra == "pdf"


def test_user_message_joins_text_and_parts() -> None:
    image = image_part("https://example.com/a.png")
    assert user_message("look", image) == {"role": "user", "content": [{"type": "text", "text": "look"}, image]}
    assert user_message(None, image)["content"] == [image]
    with pytest.raises(InvalidArgumentError):
        user_message()
