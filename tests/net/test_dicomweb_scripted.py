"""DICOMweb client error paths against a scripted HTTP server on loopback (issue 10 part 2).

Every way a DICOMweb TMS can fail — 500, 404, a timeout, a truncated body (HTTP-level and
multipart-level), a wrong content type, a part that is not DICOM or not the instance asked for,
a path segment that is not a UID, STOW-RS responses with failures, connection refused — ends as a
named per-instance failure (URL and status in the message), never a traceback, within bounded time.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from openigrt.cli import main
from openigrt.config import Settings
from openigrt.errors import BadResponse, ConnectionFailed, HttpStatusError
from openigrt.net.dicomweb.client import DicomWebClient
from openigrt.net.qr import MoveOutcome
from openigrt.net.status import StoreOutcome
from tests.net.data import CT, REG, RTIMAGE, RTSTRUCT, dataset_bytes, make_instance, write_part10
from tests.net.scripted_http import Reply, Request, ScriptedHttp, json_reply, multipart_reply
from tests.peers import free_port

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"


@pytest.fixture
def server() -> Iterator[ScriptedHttp]:
    with ScriptedHttp() as s:
        yield s


@pytest.fixture
def web(node_settings: Callable[..., Settings], server: ScriptedHttp) -> Callable[..., DicomWebClient]:
    made: list[DicomWebClient] = []

    def make(**overrides: Any) -> DicomWebClient:
        values = {"remote": server.remote, "remote__timeout": 1.0, "remote__request_timeout": 5.0, **overrides}
        client = DicomWebClient(node_settings(**values))
        made.append(client)
        return client

    yield make  # type: ignore[misc]
    for c in made:
        c.close()


def _instance(tmp_path: Path, sop_class: str = CT, *, implicit: bool = False, **kw: Any) -> tuple[str, Path]:
    ds = make_instance(sop_class, study=STUDY, series=SERIES, modality={CT: "CT", RTIMAGE: "RTIMAGE"}.get(sop_class, "OT"),
                       **kw)
    uid = str(ds.SOPInstanceUID)
    return uid, write_part10(ds, tmp_path / f"{uid}.dcm", implicit=implicit)


def _path(uid: str) -> str:
    return f"/studies/{STUDY}/series/{SERIES}/instances/{uid}"


# ----------------------------------------------------------------------------- WADO-RS
def test_good_instance_is_cached_unchanged_and_the_accept_header_asks_for_it_as_stored(
        server: ScriptedHttp, web: Callable[..., DicomWebClient], tmp_path: Path) -> None:
    uid, path = _instance(tmp_path)
    server.route("GET", _path(uid), multipart_reply([path.read_bytes()]))
    report = web().retrieve([uid], study_instance_uid=STUDY, series_instance_uid=SERIES)
    assert report.ok, report.failure_text()
    (r,) = report.results
    assert dataset_bytes(Path(r.path)) == dataset_bytes(path)
    (req,) = server.seen("GET", _path(uid))
    assert req.headers["accept"] == 'multipart/related; type="application/dicom"; transfer-syntax=*'


ONE_FAILURE = {
    "500": (multipart_reply([]).__class__(500, {"Content-Type": "application/json"}, b'{"Message": "disk on fire"}'),
            ["HTTP 500", "disk on fire"]),
    "404": (Reply(404, {"Content-Type": "text/plain"}, b"Unknown resource"), ["HTTP 404", "Unknown resource"]),
    "wrong content type": (Reply(200, {"Content-Type": "text/html"}, b"<html>login</html>"),
                           ["expected multipart/related", "text/html"]),
    "truncated multipart": (multipart_reply([b"\0" * 128 + b"DICM"], close=False), ["truncated multipart body"]),
    "truncated HTTP body": (multipart_reply([b"\0" * 200], declared_length=100_000), ["broke the HTTP exchange"]),
    "part not DICOM": (multipart_reply([b"this is not dicom at all"]), ["part 1", "not a DICOM file"]),
    "part not application/dicom": (multipart_reply([b"x"], part_type="application/octet-stream"),
                                   ["part 1", "application/octet-stream"]),
    "no boundary": (Reply(200, {"Content-Type": 'multipart/related; type="application/dicom"'}, b"--x--"),
                    ["without a boundary"]),
}


@pytest.mark.parametrize("case", sorted(ONE_FAILURE))
def test_bad_answer_is_a_named_per_instance_failure_and_the_task_goes_on(
        case: str, server: ScriptedHttp, web: Callable[..., DicomWebClient], tmp_path: Path) -> None:
    reply, words = ONE_FAILURE[case]
    bad_uid, _ = _instance(tmp_path)
    good_uid, good = _instance(tmp_path, seed=2)
    server.route("GET", _path(bad_uid), reply)
    server.route("GET", _path(good_uid), multipart_reply([good.read_bytes()]))
    client = web()
    report = client.retrieve([bad_uid, good_uid], study_instance_uid=STUDY, series_instance_uid=SERIES)
    bad, ok = report.results
    assert bad.outcome is MoveOutcome.FAILED and not bad.path
    assert f"WADO-RS GET {server.base_url}{_path(bad_uid)}" in bad.message
    for w in words:
        assert w in bad.message, bad.message
    assert client.cache.get(bad_uid) is None
    assert ok.outcome is MoveOutcome.RETRIEVED and report.error == ""  # the server said no: the task continues
    assert not list(client.cache.instances_dir.rglob("*.tmp"))


def test_wrong_instance_is_refused_not_cached(server: ScriptedHttp, web: Callable[..., DicomWebClient],
                                              tmp_path: Path) -> None:
    asked, _ = _instance(tmp_path)
    other, other_path = _instance(tmp_path, seed=3)
    server.route("GET", _path(asked), multipart_reply([other_path.read_bytes()]))
    client = web()
    (r,) = client.retrieve([asked], study_instance_uid=STUDY, series_instance_uid=SERIES).results
    assert r.outcome is MoveOutcome.FAILED and f"sent instance {other}, not the one asked for" in r.message
    assert client.cache.get(other) is None and client.cache.get(asked) is None


def test_timeout_stops_the_task_within_bounds(server: ScriptedHttp, web: Callable[..., DicomWebClient],
                                              tmp_path: Path) -> None:
    slow, path = _instance(tmp_path)
    later, _ = _instance(tmp_path, seed=2)
    server.route("GET", _path(slow), Reply(200, delay_s=3.0))
    t0 = time.monotonic()
    report = web(remote__timeout=0.5).retrieve([slow, later], study_instance_uid=STUDY, series_instance_uid=SERIES)
    assert time.monotonic() - t0 < 2.5
    first, rest = report.results
    assert first.outcome is MoveOutcome.FAILED and "no answer for 0.5 s (remote.timeout)" in first.message
    assert server.base_url in first.message
    assert rest.outcome is MoveOutcome.NOT_TRIED and report.error


def test_body_that_stops_arriving_hits_the_read_timeout(server: ScriptedHttp, web: Callable[..., DicomWebClient],
                                                        tmp_path: Path) -> None:
    uid, _ = _instance(tmp_path)
    cut = multipart_reply([b"\0" * 200], declared_length=10_000_000)  # 64 bytes, then silence on an open connection
    server.route("GET", _path(uid), Reply(cut.status, cut.headers, cut.body, declared_length=10_000_000, trickle_s=3.0))
    t0 = time.monotonic()
    report = web(remote__timeout=0.5).retrieve([uid], study_instance_uid=STUDY, series_instance_uid=SERIES)
    assert report.results[0].outcome is MoveOutcome.FAILED and "remote.timeout" in report.results[0].message
    assert time.monotonic() - t0 < 2.5


def test_trickling_server_is_bounded_by_the_request_timeout(server: ScriptedHttp, web: Callable[..., DicomWebClient],
                                                            tmp_path: Path) -> None:
    uid, path = _instance(tmp_path)
    slow = multipart_reply([path.read_bytes()])
    server.route("GET", _path(uid), Reply(slow.status, slow.headers, slow.body, trickle_s=0.1))  # ~1 s per KB
    t0 = time.monotonic()
    (r,) = web(remote__timeout=1.0, remote__request_timeout=1.0).retrieve(
        [uid], study_instance_uid=STUDY, series_instance_uid=SERIES).results
    assert r.outcome is MoveOutcome.FAILED and "not finished within 1 s (remote.request_timeout" in r.message
    assert time.monotonic() - t0 < 3.0


def test_connection_refused_every_instance_has_a_result(node_settings: Callable[..., Settings]) -> None:
    dead = free_port()
    with DicomWebClient(node_settings(remote=f"dicomweb+http://127.0.0.1:{dead}/dicom-web")) as client:
        report = client.retrieve(["1.2.3.1", "1.2.3.2"], study_instance_uid=STUDY, series_instance_uid=SERIES)
        assert [r.outcome for r in report.results] == [MoveOutcome.FAILED, MoveOutcome.NOT_TRIED]
        assert "connection refused" in report.results[0].message and f"127.0.0.1:{dead}" in report.results[0].message
        with pytest.raises(ConnectionFailed, match="DICOMweb echo failed.*connection refused"):
            client.echo()


def test_transfer_syntax_not_kept_is_asked_for_again_in_explicit_vr_le(
        server: ScriptedHttp, web: Callable[..., DicomWebClient], tmp_path: Path) -> None:
    uid, explicit = _instance(tmp_path, RTSTRUCT)  # no pixel data: pydicom writes it under any label
    jpeg = tmp_path / "jpeg.dcm"
    ds = dcmread(explicit)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"  # labelled JPEG Baseline: not kept as such
    ds.save_as(jpeg, enforce_file_format=True)

    def answer(req: Request) -> Reply:
        wanted = req.headers["accept"].rsplit("transfer-syntax=", 1)[1]
        return multipart_reply([(explicit if wanted == "1.2.840.10008.1.2.1" else jpeg).read_bytes()])

    server.route("GET", _path(uid), answer)
    (r,) = web().retrieve([uid], study_instance_uid=STUDY, series_instance_uid=SERIES).results
    assert r.outcome is MoveOutcome.RETRIEVED
    assert [q.headers["accept"].rsplit("=", 1)[1] for q in server.seen("GET", _path(uid))] == ["*", "1.2.840.10008.1.2.1"]
    assert dataset_bytes(Path(r.path)) == dataset_bytes(explicit)


def test_series_retrieve_streams_wanted_parts_and_asks_for_the_missing_one(
        server: ScriptedHttp, web: Callable[..., DicomWebClient], tmp_path: Path) -> None:
    files = [_instance(tmp_path, seed=i) for i in range(4)]
    wanted = [u for u, _ in files[:3]]
    # the series answer holds instances 0, 1 and 3 (3 not asked for); 2 comes by itself
    server.route("GET", f"/studies/{STUDY}/series/{SERIES}",
                 multipart_reply([files[i][1].read_bytes() for i in (0, 1, 3)]))
    server.route("GET", _path(wanted[2]), multipart_reply([files[2][1].read_bytes()]))
    client = web()
    report = client.retrieve(wanted, study_instance_uid=STUDY, series_instance_uid=SERIES, batch=True)
    assert report.ok, report.failure_text()
    assert client.cache.get(files[3][0]) is None
    assert len(server.seen("GET", f"/studies/{STUDY}/series/{SERIES}")) == 1
    assert [len(server.seen("GET", _path(u))) for u in wanted] == [0, 0, 1]


# ----------------------------------------------------------------------------- QIDO-RS
def _qido(uid: str, study: str = STUDY, series: str = SERIES) -> list[dict[str, Any]]:
    return [{"00080018": {"vr": "UI", "Value": [uid]}, "0020000D": {"vr": "UI", "Value": [study]},
             "0020000E": {"vr": "UI", "Value": [series]}}]


def test_locate_falls_back_to_the_hierarchy_when_the_flat_search_is_refused(
        server: ScriptedHttp, web: Callable[..., DicomWebClient], tmp_path: Path) -> None:
    uid, path = _instance(tmp_path)
    server.route("GET", "/instances", Reply(400, {"Content-Type": "text/plain"}, b"not supported"))
    server.route("GET", "/studies", json_reply([{"0020000D": {"vr": "UI", "Value": ["1.2.9"]}},
                                                {"0020000D": {"vr": "UI", "Value": [STUDY]}}]))
    server.route("GET", "/studies/1.2.9/series", json_reply([]))
    server.route("GET", f"/studies/{STUDY}/series", json_reply([{"0020000E": {"vr": "UI", "Value": [SERIES]}}]))
    server.route("GET", f"/studies/{STUDY}/series/{SERIES}/instances",
                 lambda req: json_reply(_qido(uid) if req.query.get("SOPInstanceUID") == [uid] else []))
    server.route("GET", _path(uid), multipart_reply([path.read_bytes()]))
    client = web()
    found = client.locate(uid)
    assert found.found and found.fallback_used
    assert (found.matches[0].study_instance_uid, found.matches[0].series_instance_uid) == (STUDY, SERIES)
    (r,) = client.retrieve([uid]).results  # parents unknown: located first, then WADO-RS
    assert r.outcome is MoveOutcome.RETRIEVED and r.fallback_used


def test_server_values_that_are_not_uids_never_reach_a_url(server: ScriptedHttp, web: Callable[..., DicomWebClient]) -> None:
    uid = "1.2.3.4.5"
    server.route("GET", "/instances", json_reply(_qido(uid, study="1.2/../../admin", series="..")))
    (r,) = web().retrieve([uid]).results
    assert r.outcome is MoveOutcome.FAILED and "not a UID" in r.message
    assert all(".." not in q.path and "admin" not in q.path for q in server.requests)


def test_not_found_and_garbage_answers(server: ScriptedHttp, web: Callable[..., DicomWebClient]) -> None:
    server.route("GET", f"/studies/{STUDY}/series/{SERIES}/instances", json_reply({"not": "a list"}))
    found = web().locate("1.2.3", study_instance_uid=STUDY, series_instance_uid=SERIES)
    assert not found.found and "not a JSON array" in found.message
    server.route("GET", "/instances", Reply(401, {"Content-Type": "text/plain"}, b"who are you"))
    found = web().locate("1.2.3")
    assert not found.found and "HTTP 401" in found.message and not found.fallback_used


# ----------------------------------------------------------------------------- echo and authentication
def test_echo_failures_are_clear(server: ScriptedHttp, web: Callable[..., DicomWebClient]) -> None:
    server.route("GET", "/studies", Reply(401, {"Content-Type": "text/plain"}, b"bad credentials"))
    with pytest.raises(HttpStatusError, match="DICOMweb echo failed: QIDO-RS GET .*/studies.*HTTP 401.*bad credentials"):
        web().echo()
    server.route("GET", "/studies", Reply(200, {"Content-Type": "text/html"}, b"<html/>"))
    with pytest.raises(BadResponse, match="expected application/dicom\\+json, got 'text/html'"):
        web().echo()
    server.route("GET", "/studies", Reply(204))
    assert web().echo() < 1.0


def test_credentials_are_sent(server: ScriptedHttp, web: Callable[..., DicomWebClient]) -> None:
    server.route("GET", "/studies", json_reply([]))
    web(remote__username="phys", remote__password="s3cret").echo()
    web(remote__authorization="Bearer tok-123").echo()
    sent = [r.headers.get("authorization") for r in server.seen("GET", "/studies")]
    assert sent == ["Basic " + base64.b64encode(b"phys:s3cret").decode(), "Bearer tok-123"]


# ----------------------------------------------------------------------------- STOW-RS
def _referenced(uid: str, sop_class: str, warning: int | None = None) -> dict[str, Any]:
    item = {"00081150": {"vr": "UI", "Value": [sop_class]}, "00081155": {"vr": "UI", "Value": [uid]}}
    if warning is not None:
        item["00081196"] = {"vr": "US", "Value": [warning]}
    return item


def test_stow_per_instance_report_from_the_response(server: ScriptedHttp, web: Callable[..., DicomWebClient],
                                                    tmp_path: Path) -> None:
    files = [_instance(tmp_path, c, seed=i) for i, c in enumerate((CT, RTIMAGE, CT, RTSTRUCT))]
    (ok, _), (warned, _), (refused, _), (silent, _) = files
    server.route("POST", "/studies", json_reply({
        "00081199": {"vr": "SQ", "Value": [_referenced(ok, CT), _referenced(warned, RTIMAGE, 0xB000)]},
        "00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [refused]},
                                            "00081197": {"vr": "US", "Value": [0xA700]}}]}}, status=202))
    report = web().store([p for _, p in files])
    assert [r.outcome for r in report.results] == [StoreOutcome.SENT, StoreOutcome.WARNING, StoreOutcome.FAILED,
                                                   StoreOutcome.FAILED]
    assert [r.status for r in report.results] == [0x0000, 0xB000, 0xA700, None]
    url = f"STOW-RS POST {server.base_url}/studies: HTTP 202"
    assert all(url in r.message for r in report.results[1:])
    assert "Warning Reason 0xB000" in report.results[1].message
    assert "Failure Reason 0xA700 (Failure: Refused: Out of resources)" in report.results[2].message
    assert "not acknowledged" in report.results[3].message and not report.ok
    (req,) = server.seen("POST", "/studies")  # one request, the files as they are, exact Content-Length
    assert req.headers["content-type"].startswith('multipart/related; type="application/dicom"; boundary=')
    assert "transfer-encoding" not in req.headers and int(req.headers["content-length"]) == len(req.body)
    assert req.headers["accept"] == "application/dicom+json"
    for _, p in files:
        assert p.read_bytes() in req.body


@pytest.mark.parametrize(("reply", "words"), [
    (Reply(500, {"Content-Type": "text/html"}, b"<h1>Internal Server Error</h1>"), ["HTTP 500", "Internal Server Error"]),
    (json_reply({"HttpError": "Unsupported Media Type", "Message": "bad media"}, status=415), ["HTTP 415", "bad media"]),
    (Reply(200, {"Content-Type": "application/dicom+json"}, b"{not json"), ["HTTP 200", "does not parse"]),
])
def test_stow_unusable_answer_fails_every_instance(reply: Reply, words: list[str], server: ScriptedHttp,
                                                  web: Callable[..., DicomWebClient], tmp_path: Path) -> None:
    server.route("POST", "/studies", reply)
    report = web().store([_instance(tmp_path, seed=i)[1] for i in range(2)])
    assert all(r.outcome is StoreOutcome.FAILED for r in report.results)
    for w in words:
        assert all(w in r.message for r in report.results), report.results[0].message


def test_stow_timeout_may_or_may_not_have_been_stored_and_refusals_before_sending(
        server: ScriptedHttp, web: Callable[..., DicomWebClient], tmp_path: Path) -> None:
    server.route("POST", "/studies", Reply(200, delay_s=3.0))
    reg = make_instance(REG, study=STUDY, series=SERIES, modality="REG")
    reg.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR: not one of our SCU classes
    mr = write_part10(reg, tmp_path / "mr.dcm")
    ct = _instance(tmp_path)[1]
    t0 = time.monotonic()
    report = web(remote__timeout=0.5).store([mr, ct])
    assert time.monotonic() - t0 < 2.5
    refused, lost = report.results
    assert refused.outcome is StoreOutcome.FAILED and "is not sent by our Storage SCU" in refused.message
    assert lost.outcome is StoreOutcome.FAILED and "may or may not have been stored" in lost.message
    assert report.error and "remote.timeout" in report.error


def test_stow_datasets_and_implicit_files_go_as_part10(server: ScriptedHttp, web: Callable[..., DicomWebClient],
                                                       tmp_path: Path) -> None:
    uid_file, implicit = _instance(tmp_path, implicit=True)
    ds = make_instance(CT, study=STUDY, series=SERIES, seed=9)
    server.route("POST", "/studies", lambda req: json_reply({"00081199": {"vr": "SQ", "Value": [
        _referenced(uid_file, CT), _referenced(str(ds.SOPInstanceUID), CT)]}}))
    report = web().store([implicit, ds])
    assert report.ok, report.failure_text()
    body = server.seen("POST", "/studies")[0].body
    assert implicit.read_bytes() in body and body.count(b"DICM") == 2


# ----------------------------------------------------------------------------- the CLI: one line, no traceback
def test_cli_failures_are_one_line(server: ScriptedHttp, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uid = generate_uid()
    server.route("GET", _path(uid), Reply(503, {"Content-Type": "text/plain"}, b"maintenance"))
    common = ["--remote", server.remote, "--cache", str(tmp_path / "c"), "--set", "remote.timeout=1"]
    assert main(["move", *common, "--sop-instance-uid", uid, "--study-uid", STUDY, "--series-uid", SERIES, "--json"]) == 1
    out, err = capsys.readouterr()
    assert '"outcome": "failed"' in out and "HTTP 503" in out and "maintenance" in out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "HTTP 503" in errors[0] and "Traceback" not in err
    assert main(["echo", "--remote", f"dicomweb+http://127.0.0.1:{free_port()}/dw"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "connection refused" in err and "Traceback" not in err
    assert main(["echo", "--remote", "dicomweb+ftp://x/y"]) == 2
    assert "remote.url" in capsys.readouterr().err
