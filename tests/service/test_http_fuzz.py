"""No input makes the service answer 500: property runs against the live ``/openapi.json``.

Schemathesis generates requests for every operation from the schema, valid ones and deliberately invalid
ones, and sends them to the real null-engine service; a plain hypothesis run adds bodies, media types and
query strings the schema never mentions. Both are bounded (a few hundred examples, no deadline, no database)
so the whole file takes seconds, well under a minute on a shared 2-core machine. Schemathesis is optional
(the test skips without it).
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .service_helpers import ServiceProcess

_HUGE_HEAD = 16 * 1024
#: uvicorn's own plain-text 400 for requests its HTTP parser refuses (bad header bytes); the app never runs.
_UVICORN_REFUSAL = "Invalid HTTP request received."
_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error(null_service: ServiceProcess, mode: str) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    import requests  # schemathesis's own HTTP client
    from schemathesis import GenerationMode

    spec = httpx.get(f"{null_service.base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    strategy = schema.as_strategy(GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE)
    seen: set[int] = set()

    @_SETTINGS
    @given(case=strategy)
    def run(case) -> None:  # type: ignore[no-untyped-def]
        try:
            response = case.call(base_url=null_service.base_url, timeout=10)
        except requests.RequestException:
            # uvicorn drops requests whose head is huge (negative mode makes 100 kB query strings) before
            # any application code runs; that is a 4xx-class refusal, as long as the service lives on.
            assert len(case.formatted_path) + len(str(case.query)) + len(str(case.headers)) > _HUGE_HEAD
            assert httpx.get(f"{null_service.base_url}/health", timeout=10).status_code == 200
            return
        seen.add(response.status_code)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
        )
        if response.status_code >= 400 and response.text != _UVICORN_REFUSAL:
            media = response.headers.get("content-type") or [""]
            assert (media[0] if isinstance(media, list) else media).startswith("application/json"), (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]!r}"
            )
            assert "error" in response.json()

    run()
    assert seen  # something was sent


_PATHS = [
    ("POST", "/api/v1/ocr"),
    ("POST", "/api/v1/vision/ocr"),
    ("POST", "/api/v1/vision/ocr/batch"),
    ("POST", "/api/v1/vision/text"),
    ("POST", "/api/v1/shmem/regions"),
    ("GET", "/api/v1/shmem/regions"),
    ("DELETE", "/api/v1/shmem/regions/x"),
    ("POST", "/api/v1/shmem/ocr"),
    ("GET", "/api/v1/shmem/status"),
    ("GET", "/api/v1/bridge/info"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/metrics/enhanced"),
]
_MEDIA = st.sampled_from(
    ["application/json", "application/octet-stream", "image/png", "image/jpeg", "image/tiff", "text/plain", ""]
)
_QUERY_KEYS = st.sampled_from(
    ["height", "width", "channels", "pixel_format", "pitch", "dtype", "roi", "languages", "minimum_text_height", "x"]
)
_QUERY_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str), st.text(max_size=12), st.sampled_from(["rgb", "gray", "1,2,3,4", "nan"])
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    ["image_data", "images", "name", "offset", "byte_size", "region", "height", "width", "pitch", "roi", "channels"]
)


def _body(structured: object, raw: bytes, use_json: bool) -> bytes:
    return json.dumps(structured).encode() if use_json else raw


@pytest.mark.parametrize(("method", "path"), _PATHS)
def test_random_bytes_and_params_find_no_server_error(null_service: ServiceProcess, method: str, path: str) -> None:
    with httpx.Client(base_url=null_service.base_url, timeout=10) as client:

        @settings(_SETTINGS, max_examples=15)
        @given(
            media=_MEDIA,
            query=st.dictionaries(_QUERY_KEYS, _QUERY_VALUES, max_size=5),
            structured=st.dictionaries(_FIELDS, _JSON, max_size=5) | _JSON,
            raw=st.binary(max_size=256),
            use_json=st.booleans(),
        )
        def run(media: str, query: dict, structured: object, raw: bytes, use_json: bool) -> None:
            headers = {"content-type": media} if media else {}
            content = _body(structured, raw, use_json) if method != "GET" else None
            response = client.request(method, path, params=query, content=content, headers=headers)
            assert response.status_code < 500, f"{method} {path} {query} -> {response.status_code} {response.text}"

        run()
