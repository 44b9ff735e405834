"""``/metrics`` read with ``prometheus_client``'s own parser: the families, their types and labels.

Latency is counted for every outcome, not only successes; the standard ``process_*`` and ``python_*``
collectors are there; no series ends in ``_created``.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .service_helpers import pattern

RAW = {"content-type": "application/octet-stream"}
FAMILIES = {
    "shmbridge_requests": ("counter", {"mode", "outcome"}),
    "shmbridge_request_seconds": ("histogram", {"mode", "outcome"}),
    "shmbridge_queue_seconds": ("histogram", {"mode"}),
    "shmbridge_engine_seconds": ("histogram", {"mode"}),
    "shmbridge_bytes_received": ("counter", {"mode"}),
    "shmbridge_fallbacks": ("counter", set()),
    "shmbridge_in_flight": ("gauge", set()),
    "process_cpu_seconds": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_open_fds": ("gauge", set()),
    "python_info": ("gauge", {"implementation", "major", "minor", "patchlevel", "version"}),
    "python_gc_objects_collected": ("counter", {"generation"}),
}


def scrape(client: httpx.Client) -> dict[str, object]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def latency_count(families: dict, mode: str, outcome: str) -> float:
    samples = families["shmbridge_request_seconds"].samples
    return next(
        (s.value for s in samples if s.name.endswith("_count") and s.labels == {"mode": mode, "outcome": outcome}), 0.0
    )


def test_families_types_and_labels(client: httpx.Client) -> None:
    assert client.post("/api/v1/ocr?height=2&width=3", content=pattern(2, 3).tobytes(), headers=RAW).status_code == 200
    families = scrape(client)
    for name, (kind, labels) in FAMILIES.items():
        assert name in families, f"{name} missing from /metrics"
        family = families[name]
        assert family.type == kind, (name, family.type)
        sample_labels = {frozenset(sample.labels) - {"le"} for sample in family.samples}
        assert sample_labels, name
        assert all(found == labels for found in sample_labels), (name, sample_labels)
    created = [s.name for f in families.values() for s in f.samples if s.name.endswith("_created")]
    assert created == []


def test_latency_is_counted_for_errors_too(client: httpx.Client) -> None:
    before = scrape(client)
    ok = client.post("/api/v1/ocr?height=4&width=4", content=pattern(4, 4).tobytes(), headers=RAW)
    outside = client.post("/api/v1/ocr?height=4&width=4&roi=10,10,2,2", content=pattern(4, 4).tobytes(), headers=RAW)
    assert ok.status_code == 200 and outside.status_code == 400
    outcome = outside.json()["error"]["code"].lower()
    after = scrape(client)
    assert latency_count(after, "http_raw", "ok") == latency_count(before, "http_raw", "ok") + 1
    assert latency_count(after, "http_raw", outcome) == latency_count(before, "http_raw", outcome) + 1
