"""The pure parts: retry policy, failure classification, options, and the HTTP transport's retries (mocked)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from shmbridge import errors
from shmbridge.client import http_transport, http_transport_async
from shmbridge.client.base import OcrCall, RetryPolicy, Timeouts, build_options, session_failure
from shmbridge.client.http import AsyncHttpTransport, HttpTransport, option_params, response_failure
from shmbridge.client.inputs import Pixels, prepare
from shmbridge.client.slots import copy_reordered
from shmbridge.models import OcrOptions, OcrResult, PixelFormat, Roi

OK = OcrResult(text="hi", engine="null", width=4, height=2).model_dump(mode="json")


def test_retry_policy_backs_off_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(attempts=5, backoff=0.1, max_backoff=0.5, jitter=0.2)
    for failures, base in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)):
        for _ in range(20):
            assert base * 0.8 <= policy.delay(failures) <= base * 1.2
    assert policy.delay(1, retry_after=3.0) == 3.0  # the service's hint wins when longer
    for bad in ({"attempts": 0}, {"backoff": 1.0, "max_backoff": 0.5}, {"jitter": 2.0}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)
    with pytest.raises(AttributeError):
        policy.attempts = 2  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("error", "slot_wait", "expected"),
    [
        (errors.SessionClosed("eof"), False, "broken"),
        (errors.RequestTimeout("reply"), False, "broken"),
        (errors.ProtocolError("bad frame"), False, "broken"),
        (errors.ServiceUnavailable("refused"), False, "broken"),
        (errors.MemoryLimitExceeded("bytes"), False, "frame"),
        (errors.SessionLimitExceeded("sessions"), False, "frame"),
        (errors.FrameTooLarge("pixels"), False, "frame"),
        (errors.RequestTimeout("every slot lent"), True, None),
        (errors.Busy("queue full"), False, None),
        (errors.InvalidRequest("bad"), False, None),
        (errors.EngineError("engine"), False, None),
    ],
)
def test_which_session_failures_http_may_serve(error: errors.ShmBridgeError, slot_wait: bool, expected: Any) -> None:
    failure = session_failure(error, waiting_for_slot=slot_wait)
    if expected is None:
        assert failure is None
    else:
        assert failure is not None and failure.error is error and failure.broken == (expected == "broken")


def test_options_are_built_checked_and_sent_as_query_parameters() -> None:
    assert build_options() == OcrOptions()
    options = build_options(roi="1,2,3,4", languages=["en-US", "fr-FR"], recognition_level="fast")
    assert options.roi == Roi(x=1, y=2, width=3, height=4)
    assert build_options(roi=(1, 2, 3, 4)).roi == options.roi
    assert build_options(options, custom_words=["a"]).languages == ("en-US", "fr-FR")
    with pytest.raises(errors.InvalidRequest):
        build_options(langauges=["en"])
    with pytest.raises(errors.InvalidRequest):
        build_options(minimum_text_height=5)
    assert option_params(options) == {"recognition_level": "fast", "languages": "en-US,fr-FR", "roi": "1,2,3,4"}
    assert option_params(OcrOptions()) == {}


def _call(fallback: bool = False) -> OcrCall:
    array = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)[:, ::-1]  # strided: packed on the way out
    prepared = prepare(array, "bgr")
    assert isinstance(prepared, Pixels) and prepared.pixel_format is PixelFormat.BGR
    return OcrCall(prepared, build_options(roi="0,0,2,2"), "rid-1", 5.0, fallback)


def _error(status: int, code: str, retry_after: float | None = None) -> httpx.Response:
    body: dict[str, Any] = {"code": code, "code_num": 0, "message": f"{code} here"}
    headers = {}
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers["Retry-After"] = "1"
    return httpx.Response(status, content=orjson.dumps({"error": body}), headers=headers)


def test_http_transport_retries_503_honouring_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[httpx.Request] = []
    answers = [_error(503, "BUSY", retry_after=0.25), _error(503, "SHUTTING_DOWN"), httpx.Response(200, json=OK)]
    waits: list[float] = []
    monkeypatch.setattr(http_transport.time, "sleep", waits.append)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers[len(sent) - 1]

    policy = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, jitter=0.0)
    transport = HttpTransport("http://svc", Timeouts(), policy, transport=httpx.MockTransport(handler))
    result = transport.handle(_call(fallback=True))
    assert result.text == "hi" and len(sent) == 3
    assert waits == [0.25, 0.02]  # Retry-After honoured, then the policy's backoff
    request = sent[0]
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.headers["x-shmbridge-fallback"] == "1"
    assert dict(request.url.params) == {"height": "2", "width": "4", "channels": "3", "pixel_format": "bgr",
                                        "dtype": "uint8", "roi": "0,0,2,2", "request_id": "rid-1"}  # fmt: skip
    expected = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)[:, ::-1].tobytes()
    assert request.content == expected  # raw pixels, never base64 or JSON


def test_http_transport_gives_up_with_the_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_transport.time, "sleep", lambda seconds: None)
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return _error(503, "BUSY", retry_after=0.01) if request.method == "POST" else _error(400, "BAD_SLOT")

    transport = HttpTransport("http://svc", Timeouts(), RetryPolicy(attempts=2), transport=httpx.MockTransport(handler))
    with pytest.raises(errors.Busy) as busy:
        transport.handle(_call())
    assert busy.value.retry_after == 0.01 and calls["n"] == 2
    calls["n"] = 0
    with pytest.raises(errors.InvalidRequest):  # a client error is never retried
        transport.get_json("/api/v1/bridge/info")
    assert calls["n"] == 1

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(errors.ServiceUnavailable):
        HttpTransport("http://svc", Timeouts(), RetryPolicy(), transport=httpx.MockTransport(refuse)).handle(_call())
    with pytest.raises(errors.RequestTimeout):
        HttpTransport("http://svc", Timeouts(), RetryPolicy(), transport=httpx.MockTransport(slow)).handle(_call())
    plain = response_failure(httpx.Response(502, text="bad gateway", request=httpx.Request("GET", "http://x/y")))
    assert type(plain.error) is errors.ShmBridgeError and not plain.retryable


def test_async_http_transport_retries_connection_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = {"n": 0}

    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(http_transport_async.asyncio, "sleep", no_sleep)

    def handler(request: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=OK)

    async def main() -> None:
        mock = httpx.MockTransport(handler)
        transport = AsyncHttpTransport("http://svc", Timeouts(), RetryPolicy(attempts=3), transport=mock)
        try:
            assert (await transport.handle(_call())).text == "hi"
        finally:
            await transport.close()

    asyncio.run(main())
    assert attempts["n"] == 3


@pytest.mark.parametrize(
    ("source", "target"),
    [("rgb", "bgr"), ("bgr", "rgb"), ("rgba", "bgra"), ("bgra", "rgba"), ("rgb", "rgb")],
)
def test_channels_are_reordered_in_the_one_copy(source: str, target: str) -> None:
    src_fmt, dst_fmt = PixelFormat(source), PixelFormat(target)
    pixels = np.random.default_rng(3).integers(0, 256, (7, 5, src_fmt.channels), dtype=np.uint8)
    strided = np.ascontiguousarray(np.repeat(pixels, 2, axis=1))[:, ::2]  # any strides in
    out = np.empty_like(pixels)
    copy_reordered(strided, out, src_fmt, dst_fmt)
    for index, channel in enumerate(target):
        assert np.array_equal(out[:, :, index], pixels[:, :, source.index(channel)])
