"""multipart/related reading and writing for DICOMweb (PS3.18 8.6.1.2): golden bytes, any chunking, every defect."""

from __future__ import annotations

import pytest

from openigrt.net.dicomweb.multipart import (
    PART_TAIL,
    MultipartError,
    MultipartReader,
    closing_delimiter,
    contains_delimiter,
    content_length,
    iter_parts,
    new_boundary,
    parse_media_type,
    part_head,
)

#: A body as Orthanc writes it (headers, Content-Length, MIME-Version), with a preamble and an epilogue.
BOUNDARY = "a5ec9862-cacf-40e0"
GOLDEN = (b"preamble to ignore\r\n"
          b"--a5ec9862-cacf-40e0\r\nContent-Type: application/dicom\r\nContent-Length: 5\r\nMIME-Version: 1.0\r\n\r\n"
          b"first\r\n"
          b"--a5ec9862-cacf-40e0  \r\nContent-Type: application/dicom\r\n\r\n"
          b"sec\r\n--a5ec9862-cacf-40e0Xond part holding a fake delimiter line\r\n"
          b"--a5ec9862-cacf-40e0\r\n\r\n"
          b"\r\n"
          b"--a5ec9862-cacf-40e0--\r\nepilogue")
EXPECTED = [b"first", b"sec\r\n--a5ec9862-cacf-40e0Xond part holding a fake delimiter line", b""]


def _parse(data: bytes, chunk: int, *, limit: int = 1 << 20) -> list[bytes]:
    return [p.body for p in iter_parts((data[i:i + chunk] for i in range(0, len(data), chunk)), BOUNDARY,
                                       max_part_bytes=limit)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 19, 64, 10_000])
def test_golden_body_in_any_chunking(chunk: int) -> None:
    assert _parse(GOLDEN, chunk) == EXPECTED


def test_part_headers_and_types() -> None:
    reader = MultipartReader(BOUNDARY, max_part_bytes=100)
    parts = reader.feed(GOLDEN)
    assert reader.finished and reader.parts == 3
    assert parts[0].headers == {"content-type": "application/dicom", "content-length": "5", "mime-version": "1.0"}
    assert [p.content_type for p in parts] == ["application/dicom", "application/dicom", ""]
    assert [p.index for p in parts] == [1, 2, 3]


def test_body_starting_with_the_delimiter_and_no_preamble() -> None:
    body = part_head("b", "application/dicom") + b"x" + PART_TAIL + closing_delimiter("b")
    assert body.startswith(b"--b\r\n")
    assert [p.body for p in iter_parts([body], "b", max_part_bytes=10)] == [b"x"]


@pytest.mark.parametrize(("cut", "where"), [
    (30, "no multipart boundary"),                      # inside the preamble
    (GOLDEN.index(b"first") + 2, "inside part 1"),      # inside a body
    (GOLDEN.index(b"Content-Type"), "in the headers of part 1"),
    (GOLDEN.rindex(b"--a5ec9862-cacf-40e0--") - 2, "inside part 3"),
])
def test_truncated_body_names_where(cut: int, where: str) -> None:
    reader = MultipartReader(BOUNDARY, max_part_bytes=1000)
    got = reader.feed(GOLDEN[:cut])
    with pytest.raises(MultipartError, match=where) as info:
        reader.close()
    assert "truncated" in str(info.value) or "no multipart boundary" in str(info.value)
    assert len(got) == (0 if "part 1" in where or "boundary" in where else 2)  # complete parts came out first


def test_content_length_mismatch_is_refused() -> None:
    body = GOLDEN.replace(b"Content-Length: 5", b"Content-Length: 6")
    with pytest.raises(MultipartError, match="part 1 declares Content-Length 6 but has 5 bytes"):
        _parse(body, 5)


def test_part_over_the_limit_is_refused_without_buffering_the_rest() -> None:
    huge = part_head("b", "application/dicom") + b"x" * 100_000
    reader = MultipartReader("b", max_part_bytes=4096)
    with pytest.raises(MultipartError, match="part 1 exceeds the limit of 4096 bytes"):
        for i in range(0, len(huge), 1000):
            reader.feed(huge[i:i + 1000])


@pytest.mark.parametrize("bad", [b"--b\r\nno colon here\r\n\r\nx\r\n--b--", b"--b\r\nA: 1\r\n\r\nx"])
def test_malformed_framing(bad: bytes) -> None:
    with pytest.raises(MultipartError):
        list(iter_parts([bad], "b", max_part_bytes=100))


def test_headers_that_never_end() -> None:
    with pytest.raises(MultipartError, match="headers of part 1 exceed"):
        MultipartReader("b", max_part_bytes=10).feed(b"--b\r\n" + b"X-A: " + b"a" * 20_000)


@pytest.mark.parametrize("boundary", ["", "x" * 71, "bad\nline", "trailing "])
def test_invalid_boundary(boundary: str) -> None:
    with pytest.raises(MultipartError, match="invalid multipart boundary"):
        MultipartReader(boundary, max_part_bytes=10)


def test_writer_round_trip_and_exact_length() -> None:
    boundary = new_boundary()
    parts = [b"\x00" * 128 + b"DICM" + bytes(range(256)) * 3, b"", b"\r\n--" + b"y" * 10]
    body = b"".join(part_head(boundary, "application/dicom", content_length=len(p)) + p + PART_TAIL for p in parts)
    body += closing_delimiter(boundary)
    assert len(body) == content_length(boundary, "application/dicom", [len(p) for p in parts])
    assert [p.body for p in iter_parts([body], boundary, max_part_bytes=10_000)] == parts
    assert not any(contains_delimiter(p, boundary) for p in parts)
    assert contains_delimiter(b"abc\r\n--" + boundary.encode() + b"--", boundary)
    assert contains_delimiter(b"--" + boundary.encode(), boundary)


def test_media_type_parameters() -> None:
    mt = parse_media_type('Multipart/Related; Type="application/dicom"; boundary="a b;c"; transfer-syntax=*')
    assert mt.type == "multipart/related"
    assert mt.params == {"type": "application/dicom", "boundary": "a b;c", "transfer-syntax": "*"}
    assert parse_media_type(None).type == ""
