"""Screen streams through a real service: real ``shmbridge serve`` processes, real sockets and shared memory.

The reading tests use the real rapidocr engine on generated pages and compare each stream frame with a
full read of the same frame by the same service. The rules, limits, TTL and cleanup tests use the null
engine (its reads are instant, and a stream's bookkeeping does not depend on what the engine finds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from shmbridge.client import AsyncClient, Client, ClientResult
from shmbridge.errors import InvalidRequest, InvalidStreamName, StreamLimitExceeded

from ..support.service import RunningService, running_service, wait_until
from .conftest import LINE_HEIGHT, WORDS, page, texts

STATE_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def ocr_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("streams-ocr"), engine="rapidocr") as service:
        yield service


@pytest.fixture(scope="module")
def null_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    flags = (
        "--max-streams-per-session", "2",
        "--max-streams-per-client", "2",
        "--stream-idle-ttl", "1",
        "--stream-keyframe-frames", "4",
        "--max-stream-state-bytes", str(STATE_LIMIT),
        "--no-warm-up",
    )  # fmt: skip
    with running_service(tmp_path_factory.mktemp("streams-null"), *flags) as service:
        yield service


def client_for(service: RunningService, mode: str = "shm") -> Client:
    return Client(service.url, socket=service.socket_path, mode=mode)


def live_streams(service: RunningService) -> int:
    return int(httpx.get(f"{service.url}/metrics/enhanced", timeout=10).json()["streams"]["live"])


# -- reading: the real engine ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["shm", "http"])
def test_an_unchanged_frame_is_the_full_read_and_reads_nothing(ocr_service: RunningService, mode: str) -> None:
    frame = page(WORDS[:8])
    with client_for(ocr_service, mode) as client:
        full = client.ocr(frame)
        with client.stream("unchanged") as stream:
            first = stream.ocr(frame)
            second = stream.ocr(frame)
    assert first.stream is not None and first.stream.keyframe and first.stream.reason == "first"
    assert second.stream is not None and not second.stream.keyframe
    assert second.stream.rects == [] and second.stream.read_lines == 0
    assert second.stream.reused_lines == len(full.lines) == 8
    assert texts(second.lines) == texts(first.lines) == texts(full.lines)
    assert second.text == full.text
    assert [line.box for line in second.lines] == [line.box for line in full.lines]
    expected = "shared_memory" if mode == "shm" else "http"
    assert second.communication_mode == expected
    assert second.timings.fingerprint_ms > 0
    assert second.timings.detect_ms == 0  # nothing was read


def test_a_changed_line_is_read_again_and_its_neighbours_are_reused(ocr_service: RunningService) -> None:
    before = page(WORDS[:8])
    changed = [*WORDS[:3], "Printer offline since Monday", *WORDS[4:8]]
    after = page(changed)
    with client_for(ocr_service) as client:
        full = client.ocr(after)
        with client.stream("typing", delta=True) as stream:
            stream.ocr(before)
            result = stream.ocr(after)
    info = result.stream
    assert info is not None and not info.keyframe
    assert texts(result.lines) == texts(full.lines) == changed
    assert info.reused_lines == 7 and info.new_lines == 1 and info.removed_lines == 1
    assert [line.text for line in info.added or []] == ["Printer offline since Monday"]
    assert [line.text for line in info.removed or []] == [WORDS[3]]
    # Only the changed line's band was read, not the page.
    assert len(info.rects) == 1
    rect = info.rects[0]
    assert rect.y <= 12 + 3 * LINE_HEIGHT and rect.y + rect.height >= 12 + 4 * LINE_HEIGHT - 8
    assert rect.height < 3 * LINE_HEIGHT
    assert info.read_pixels < after.shape[0] * after.shape[1] // 4
    for stage in ("fingerprint_ms", "detect_ms", "recognize_ms", "merge_ms"):
        assert getattr(result.timings, stage) > 0, stage
    stages = result.timings.fingerprint_ms + result.timings.merge_ms + result.timings.detect_ms
    stages += result.timings.recognize_ms + result.timings.postprocess_ms
    assert stages <= result.timings.engine_ms


def test_a_scrolled_frame_moves_the_cached_lines_and_reads_the_new_ones(ocr_service: RunningService) -> None:
    height = 12 + LINE_HEIGHT * 8 + 12
    top, scrolled = page(WORDS[:8], height=height), page(WORDS[2:10], height=height)
    with client_for(ocr_service) as client:
        full = client.ocr(scrolled)
        with client.stream("scrolling") as stream:
            stream.ocr(top)
            result = stream.ocr(scrolled)
    info = result.stream
    assert info is not None and not info.keyframe
    assert info.scroll == -2 * LINE_HEIGHT
    assert texts(result.lines) == texts(full.lines) == WORDS[2:10]
    assert info.reused_lines >= 5  # the lines that only moved were not read again
    for line, reference in zip(result.lines, full.lines, strict=True):
        assert abs(line.box.y - reference.box.y) <= 3


def test_a_stream_over_a_region_reports_frame_coordinates(ocr_service: RunningService) -> None:
    frame = np.full((400, 800, 3), 255, np.uint8)
    frame[60 : 60 + 296, 100 : 100 + 640] = page(WORDS[:8])
    region = (100, 60, 640, 296)
    with client_for(ocr_service) as client:
        full = client.ocr(frame, roi=region)
        with client.stream("region") as stream:
            first = stream.ocr(frame, roi=region)
    assert first.stream is not None and first.stream.rects[0].x == 100 and first.stream.rects[0].y == 60
    assert texts(first.lines) == texts(full.lines)
    assert all(line.box.x >= 100 and line.box.y >= 60 for line in first.lines)


def test_the_async_client_streams_the_same_way(ocr_service: RunningService) -> None:
    before, after = page(WORDS[:4]), page([*WORDS[:3], "Volume muted"])

    async def main() -> ClientResult:
        client = AsyncClient(ocr_service.url, socket=ocr_service.socket_path, mode="shm")
        async with client, client.stream("async", delta=True) as stream:
            await stream.ocr(before)
            return await stream.ocr(after)

    result = asyncio.run(main())
    assert result.stream is not None and result.stream.reused_lines == 3
    assert [line.text for line in result.stream.added or []] == ["Volume muted"]
    assert texts(result.lines) == [*WORDS[:3], "Volume muted"]


# -- rules, limits and cleanup: the null engine -------------------------------------------------------------


def test_the_keyframe_rules_hold(null_service: RunningService) -> None:
    small, large = page(WORDS[:4]), page(WORDS[:6])
    with client_for(null_service) as client:
        reasons = [client.ocr(small, stream="rules").stream.reason]  # type: ignore[union-attr]
        reasons.append(client.ocr(small, stream="rules").stream.reason)  # type: ignore[union-attr]
        reasons.append(client.ocr(small, stream="rules", keyframe=True).stream.reason)  # type: ignore[union-attr]
        reasons.append(client.ocr(large, stream="rules").stream.reason)  # type: ignore[union-attr]
        reasons.append(client.ocr(large, stream="rules", languages=["de-DE"]).stream.reason)  # type: ignore[union-attr]
        for _ in range(3):
            reasons.append(client.ocr(large, stream="rules", languages=["de-DE"]).stream.reason)  # type: ignore[union-attr]
    # first frame; unchanged; on request; a new size; new options; then every 4th frame since a keyframe
    assert reasons == ["first", None, "requested", "size", "options", None, None, None]
    with client_for(null_service) as client:
        frames = [client.ocr(small, stream="count").stream for _ in range(9)]
    assert [info.keyframe for info in frames if info is not None] == [i % 4 == 0 for i in range(9)]


def test_streams_are_freed_when_their_session_ends(null_service: RunningService) -> None:
    frame = page(WORDS[:2])
    assert wait_until(lambda: live_streams(null_service) == 0)
    for index in range(200):
        with client_for(null_service) as client:
            client.ocr(frame, stream="short")
            client.ocr(frame, stream="lived")
        if index % 50 == 49:
            assert wait_until(lambda: live_streams(null_service) == 0, timeout=10), index
    assert wait_until(lambda: live_streams(null_service) == 0, timeout=10)
    counts = httpx.get(f"{null_service.url}/metrics/enhanced", timeout=10).json()["streams"]
    assert counts["frames"] >= 400


def test_http_streams_expire_after_the_idle_ttl(null_service: RunningService) -> None:
    frame = page(WORDS[:2])
    headers = {"X-Shmbridge-Client": "ttl-test"}
    with httpx.Client(base_url=null_service.url, headers=headers, timeout=10) as http:
        body = frame.tobytes()
        params = {"height": frame.shape[0], "width": frame.shape[1], "channels": 3, "stream": "idle"}
        raw = {"Content-Type": "application/octet-stream"}
        first = http.post("/api/v1/ocr", params=params, content=body, headers=raw).json()
        again = http.post("/api/v1/ocr", params=params, content=body, headers=raw).json()
        assert first["stream"]["reason"] == "first" and again["stream"]["keyframe"] is False
        assert http.get("/api/v1/streams").json()["streams"] == ["idle"]
        # Another client key does not see it.
        assert http.get("/api/v1/streams", headers={"X-Shmbridge-Client": "other"}).json()["streams"] == []
        time.sleep(1.3)
        assert http.get("/api/v1/streams").json()["streams"] == []
        later = http.post("/api/v1/ocr", params=params, content=body, headers=raw).json()
        assert later["stream"]["reason"] == "first"
        closed = http.delete("/api/v1/streams/idle").json()
        assert closed == {"name": "idle", "closed": True}
        assert http.delete("/api/v1/streams/idle").json()["closed"] is False


def test_limits_give_typed_errors(null_service: RunningService) -> None:
    frame = page(WORDS[:2])
    with client_for(null_service) as client:
        client.ocr(frame, stream="one")
        client.ocr(frame, stream="two")
        with pytest.raises(StreamLimitExceeded, match="limit is 2"):
            client.ocr(frame, stream="three")
        assert client.session_active  # a stream limit is the caller's answer: no fallback, no reconnect
        with pytest.raises(StreamLimitExceeded, match="bytes of state"):
            client.ocr(np.zeros((1080, 1920, 3), np.uint8), stream="one")
    raw = {"Content-Type": "application/octet-stream", "X-Shmbridge-Client": "limits"}
    with httpx.Client(base_url=null_service.url, headers=raw, timeout=10) as http:
        params = {"height": frame.shape[0], "width": frame.shape[1], "channels": 3}
        for name in ("a", "b"):
            assert http.post("/api/v1/ocr", params={**params, "stream": name}, content=frame.tobytes()).is_success
        refused = http.post("/api/v1/ocr", params={**params, "stream": "c"}, content=frame.tobytes())
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "STREAM_LIMIT"


@pytest.mark.parametrize("name", ["", "has space", "../etc", "x" * 65, "-leading", "ünï"])
def test_bad_stream_names_are_refused(null_service: RunningService, name: str) -> None:
    frame = page(WORDS[:1])
    with client_for(null_service) as client:
        with pytest.raises(InvalidStreamName):
            client.ocr(frame, stream=name)
        assert client.session_active
    with httpx.Client(base_url=null_service.url, timeout=10) as http:
        params = {"height": frame.shape[0], "width": frame.shape[1], "channels": 3, "stream": name}
        answer = http.post("/api/v1/ocr", params=params, content=frame.tobytes(),
                           headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] in {"BAD_STREAM_NAME", "INVALID_REQUEST"}


def test_stream_fields_without_a_stream_are_refused(null_service: RunningService) -> None:
    with client_for(null_service) as client, pytest.raises(InvalidRequest, match="stream=NAME"):
        client.ocr(page(WORDS[:1]), delta=True)


def test_stream_metrics_are_exported(null_service: RunningService) -> None:
    with client_for(null_service) as client:
        client.ocr(page(WORDS[:2]), stream="metrics")
        client.ocr(page(WORDS[:2]), stream="metrics")
    text = httpx.get(f"{null_service.url}/metrics", timeout=10).text
    for name in (
        "shmbridge_stream_frames_total",
        'shmbridge_stream_keyframes_total{reason="first"}',
        'shmbridge_stream_lines_total{kind="reused"}',
        "shmbridge_stream_changed_area_bucket",
        "shmbridge_streams ",
    ):
        assert name in text, name


def test_the_old_clients_facade_is_unaffected(null_service: RunningService) -> None:
    from shmbridge.compat import shared_memory_client

    async def main() -> Any:
        async with shared_memory_client(null_service.url, socket=null_service.socket_path) as old:
            return await old.process_ocr(page(WORDS[:1]))

    result = asyncio.run(main())
    assert result.stream is None and result.communication_mode == "shared_memory"
