"""``/docs`` in a real browser: headless Debian chromium loads Swagger UI from the service alone.

The page must render the OpenAPI 3.1 document FastAPI writes (Swagger UI 4 could not and said "Unable to
render this definition"), list the OCR operations, and load nothing from outside the service. Skips, with
the reason, where chromium is not installed (``make test`` installs it with apt-get where it runs as root).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .chromium import Chromium, chromium_binary
from .service_helpers import ServiceProcess

pytestmark = pytest.mark.skipif(
    chromium_binary() is None,
    reason="Debian's chromium is not installed; `make test` installs it with apt-get when run as root",
)

#: The operations list as Swagger UI draws it: one ``.opblock`` per operation, its path and method inside.
OPERATIONS = """JSON.stringify([...document.querySelectorAll('.opblock')].map(op => [
  (op.querySelector('.opblock-summary-method') || {}).textContent,
  (op.querySelector('.opblock-summary-path') || {}).dataset?.path
]))"""
OCR_OPERATIONS = {
    ("POST", "/api/v1/ocr"),
    ("POST", "/api/v1/vision/ocr"),
    ("POST", "/api/v1/vision/ocr/batch"),
    ("POST", "/api/v1/vision/text"),
    ("POST", "/api/v1/shmem/ocr"),
}


def test_docs_page_renders_the_operations(null_service: ServiceProcess, tmp_path: Path) -> None:
    with Chromium(tmp_path / "profile") as browser:
        browser.page("Network.enable")
        browser.navigate(f"{null_service.base_url}/docs")
        listed = browser.wait_for(f"document.querySelectorAll('.opblock').length > 0 && {OPERATIONS}", 60)
        body_text = browser.evaluate("document.body.innerText") or ""
        assert listed, f"no operations listed within 60 s; the page says: {body_text[:300]!r}"
        assert "Unable to render" not in body_text and "version field" not in body_text
        operations = {(method, path) for method, path in json.loads(listed)}
        assert operations >= OCR_OPERATIONS
        assert browser.evaluate("document.querySelector('.info .title')?.textContent").startswith("shmbridge")
        # Every resource the page loaded came from the service itself.
        loaded = browser.evaluate("JSON.stringify(performance.getEntriesByType('resource').map(e => e.name))")
        assert all(url.startswith(null_service.base_url) for url in json.loads(loaded)), loaded
        shot = browser.screenshot(tmp_path / "docs.png")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
