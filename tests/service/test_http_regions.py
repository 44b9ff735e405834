"""HTTP-controlled shared memory: registering files, reading pixels from them, and every way to misuse it.

Traversal (``../``, absolute paths, ``/`` in names), symlinks, FIFOs and directories are refused; offsets
and sizes are checked against the file and against 2**48; per-client and total limits hold; a region
unregistered while a request reads it stays mapped until that request is done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from shmbridge.engines.null import checksum

from .service_helpers import MAX_REGION_BYTES, MAX_REGIONS_PER_CLIENT, ServiceProcess, pattern, wait_until

REGIONS = "/api/v1/shmem/regions"


class RegionClient:
    """Registers regions under a client name of its own and unregisters whatever is left at the end."""

    def __init__(self, http: httpx.Client, directory: Path) -> None:
        self.http = http
        self.directory = directory
        self.client_id = f"test-{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def file(self, size: int, data: bytes = b"", at: int = 0) -> str:
        name = f"r-{uuid.uuid4().hex[:10]}"
        path = self.directory / name
        with open(path, "wb") as handle:
            handle.truncate(size)
            handle.seek(at)
            handle.write(data)
        return name

    def register(self, name: str, **fields: object) -> httpx.Response:
        response = self.http.post(
            REGIONS, json={"name": name, **fields}, headers={"X-Shmbridge-Client": self.client_id}
        )
        if response.status_code == 201:
            self.names.append(name)
        return response

    def ocr(self, **fields: object) -> httpx.Response:
        return self.http.post("/api/v1/shmem/ocr", json=fields)

    def cleanup(self) -> None:
        for name in self.names:
            self.http.delete(f"{REGIONS}/{name}")
        for entry in self.directory.iterdir():
            if entry.name.startswith(("r-", "link-", "fifo-", "dir-")):
                if entry.is_dir() and not entry.is_symlink():
                    entry.rmdir()
                else:
                    entry.unlink()


@pytest.fixture
def regions(null_service: ServiceProcess, client: httpx.Client) -> Iterator[RegionClient]:
    assert null_service.region_dir is not None
    helper = RegionClient(client, null_service.region_dir)
    yield helper
    helper.cleanup()


def test_register_list_ocr_unregister(regions: RegionClient, client: httpx.Client) -> None:
    image = pattern(20, 30, 3, seed=9)
    # The region starts at an unaligned offset inside the file; the image at an offset inside the region.
    name = regions.file(12288, image.tobytes(), at=4096 + 100 + 64)
    response = regions.register(name, offset=4096 + 100, byte_size=4000)
    assert response.status_code == 201, response.text
    info = response.json()
    assert (info["name"], info["byte_size"], info["state"], info["client"]) == (name, 4000, "active", regions.client_id)
    listed = client.get(REGIONS).json()
    assert name in [item["name"] for item in listed["regions"]] and listed["bytes_mapped"] >= 4000
    scraped = client.get("/metrics").text
    assert f"shmbridge_region_bytes_mapped {float(listed['bytes_mapped'])}" in scraped, scraped

    result = regions.ocr(region=name, offset=64, height=20, width=30, channels=3, pixel_format="rgb",
                         request_id="shm-1")  # fmt: skip
    assert result.status_code == 200, result.text
    assert result.json()["checksum"] == checksum(image, "full")
    assert result.json()["request_id"] == "shm-1"
    enhanced = client.get("/metrics/enhanced").json()
    assert enhanced["requests"]["shm_region"]["ok"] >= 1
    # Read with pread into the service's own buffer (a mapping could SIGBUS on a truncated file): one copy.
    assert enhanced["bytes_copied"].get("shm_region", 0.0) == image.nbytes

    removed = client.delete(f"{REGIONS}/{name}")
    assert removed.status_code == 200 and removed.json()["deferred"] is False
    regions.names.remove(name)
    assert name not in [item["name"] for item in client.get(REGIONS).json()["regions"]]
    assert regions.ocr(region=name, height=1, width=1).status_code == 404


def test_pitch_roi_and_default_size(regions: RegionClient) -> None:
    rows = pattern(12, 64, 1, seed=21)  # 12 rows of 64 bytes, each holding 20 RGB pixels
    name = regions.file(12 * 64, rows.tobytes())
    assert regions.register(name).json()["byte_size"] == 12 * 64  # byte_size defaults to the whole file
    response = regions.ocr(region=name, height=12, width=20, pixel_format="bgr", pitch=64, roi="2,3,10,5")
    assert response.status_code == 200, response.text
    expected = rows[:, :60].reshape(12, 20, 3)[3:8, 2:12]
    assert response.json()["checksum"] == checksum(expected, "full")
    gray = regions.ocr(region=name, height=12, width=64, channels=1)
    assert gray.json()["checksum"] == checksum(rows, "full")


@pytest.mark.parametrize(
    "name",
    ["../escape", "../../etc/passwd", "/etc/passwd", "a/b", "..", ".", ".hidden", "a..b", "", "x" * 65, "nul\x00l"],
)
def test_traversal_and_bad_names_are_refused(regions: RegionClient, name: str) -> None:
    response = regions.register(name, byte_size=16)
    assert response.status_code in (400, 422), response.text
    assert "error" in response.json()


def test_symlinks_are_refused(regions: RegionClient, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"s" * 4096)
    inside = regions.file(4096)
    for target in (outside, regions.directory / inside, Path("/etc/hostname")):
        link = f"link-{uuid.uuid4().hex[:8]}"
        (regions.directory / link).symlink_to(target)
        response = regions.register(link)
        assert response.status_code == 400, response.text
        assert "symbolic link" in response.json()["error"]["message"]


def test_fifos_directories_and_missing_files_are_refused(regions: RegionClient) -> None:
    fifo = f"fifo-{uuid.uuid4().hex[:8]}"
    os.mkfifo(regions.directory / fifo)
    response = regions.http.post(REGIONS, json={"name": fifo}, timeout=10)  # must not hang on open
    assert response.status_code == 400 and "regular file" in response.json()["error"]["message"]
    directory = f"dir-{uuid.uuid4().hex[:8]}"
    (regions.directory / directory).mkdir()
    assert regions.register(directory).status_code == 400
    assert regions.register("r-does-not-exist").status_code == 404


def test_offsets_and_sizes_are_checked(regions: RegionClient) -> None:
    name = regions.file(4096)
    assert regions.register(name, offset=0, byte_size=4097).status_code == 400  # past the end of the file
    assert regions.register(name, offset=4000, byte_size=97).status_code == 400
    assert regions.register(name, offset=4096).status_code == 400  # nothing left after the offset
    assert regions.register(name, offset=2**48 - 1, byte_size=2).status_code == 400
    for fields in ({"offset": 2**48}, {"byte_size": 2**48}, {"offset": 2**64, "byte_size": 2**64},
                   {"offset": -1}, {"byte_size": 0}, {"byte_size": -4096}):  # fmt: skip
        assert regions.register(name, **fields).status_code == 422, fields
    assert regions.register(name, offset=96, byte_size=4000).status_code == 201
    # Requests must stay inside the region.
    assert regions.ocr(region=name, offset=3999, height=1, width=2, channels=1).status_code == 400
    assert regions.ocr(region=name, height=2, width=10, channels=1, pitch=3991).status_code == 400
    assert regions.ocr(region=name, height=1, width=10, channels=1, pitch=5).status_code == 400
    assert regions.ocr(region=name, offset=2**48, height=1, width=1).status_code == 422
    assert regions.ocr(region=name, height=2**40, width=2**40, channels=1).status_code == 413
    assert regions.ocr(region=name, height=20, width=20, channels=1).status_code == 200


def test_duplicates_and_unknown_names(regions: RegionClient, client: httpx.Client) -> None:
    name = regions.file(4096)
    assert regions.register(name).status_code == 201
    assert regions.register(name).status_code == 409
    assert client.delete(f"{REGIONS}/r-never-registered").status_code == 404
    assert client.delete(f"{REGIONS}/..secret").status_code == 400
    assert regions.ocr(region="r-never-registered", height=1, width=1).status_code == 404


def test_per_client_and_total_limits(regions: RegionClient) -> None:
    for _ in range(MAX_REGIONS_PER_CLIENT):
        assert regions.register(regions.file(4096)).status_code == 201
    over = regions.register(regions.file(4096))
    assert over.status_code == 413 and over.json()["error"]["code"] == "MEMORY_LIMIT"
    for name in list(regions.names):
        regions.http.delete(f"{REGIONS}/{name}")
        regions.names.remove(name)
    too_big = regions.register(regions.file(MAX_REGION_BYTES + 4096))
    assert too_big.status_code == 413


def test_truncated_file_is_refused_not_faulted(regions: RegionClient, client: httpx.Client) -> None:
    name = regions.file(8192)
    assert regions.register(name).status_code == 201
    os.truncate(regions.directory / name, 100)
    response = regions.ocr(region=name, height=10, width=10, channels=1)
    assert response.status_code == 400 and "shrank" in response.json()["error"]["message"]
    assert client.get("/health").status_code == 200  # the service did not die of SIGBUS


def test_unregister_while_in_use_is_deferred(slow_service: ServiceProcess) -> None:
    assert slow_service.region_dir is not None
    client = slow_service.client()
    image = pattern(16, 16, 3, seed=5)
    name = f"r-{uuid.uuid4().hex[:8]}"
    path = slow_service.region_dir / name
    path.write_bytes(image.tobytes())
    try:
        assert client.post(REGIONS, json={"name": name}).status_code == 201
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.post, "/api/v1/shmem/ocr", json={"region": name, "height": 16, "width": 16})
            assert wait_until(lambda: client.get("/health").json()["in_flight"] >= 1, timeout=10)
            removed = client.delete(f"{REGIONS}/{name}")
            assert removed.status_code == 200 and removed.json() == {
                "name": name, "unregistered": True, "deferred": True, "in_use": 1
            }  # fmt: skip
            status = client.get("/api/v1/shmem/status").json()["regions"]
            assert status["closing"] == 1 and status["count"] == 0
            assert client.post("/api/v1/shmem/ocr", json={"region": name, "height": 1, "width": 1}).status_code == 404
            result = pending.result(timeout=30)
        assert result.status_code == 200, result.text
        assert result.json()["checksum"] == checksum(image, "sampled")
        assert wait_until(lambda: client.get("/api/v1/shmem/status").json()["regions"]["closing"] == 0, timeout=10)
        assert client.get("/api/v1/shmem/status").json()["regions"]["bytes_mapped"] == 0
    finally:
        path.unlink(missing_ok=True)


def test_region_pixels_are_a_read_only_view() -> None:
    """The registry itself: views are read-only and share the mapping (no copy)."""
    import tempfile

    from shmbridge.service.http.regions import RegionRegistry

    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "frame").write_bytes(bytes(range(256)) * 16)
        registry = RegionRegistry(Path(directory), 4, 1 << 20)
        try:
            region = registry.register("frame", "me", offset=4096 - 256, byte_size=256)
            view = registry.view(region, 0, 16, 16, 1)
            assert not view.flags.writeable and not view.flags.owndata
            assert np.array_equal(view.ravel(), np.arange(256, dtype=np.uint8))
            with pytest.raises(ValueError):
                view[0, 0] = 1
            del view
        finally:
            registry.close()


def test_a_file_the_service_may_not_read_is_403(service_factory: Callable[..., ServiceProcess]) -> None:
    """An unreadable region file gets 403 ACCESS_DENIED, not a 500 or a crash. Root reads every file, so as
    root the service runs without the two capabilities that let it (``setpriv``, bounding set)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: root would read the file anyway")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            pytest.skip(f"cannot drop capabilities here: {probe.stderr.strip()}")
    service = service_factory(prefix=prefix)
    assert service.region_dir is not None
    locked = service.region_dir / "locked"
    locked.write_bytes(bytes(4096))
    locked.chmod(0)
    with service.client() as http:
        response = http.post(REGIONS, json={"name": "locked", "byte_size": 4096})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "ACCESS_DENIED"
        assert http.get("/health").status_code == 200
