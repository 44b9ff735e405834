"""Service configuration: data, validated once, from flags, ``SHMBRIDGE_*`` variables or a file.

The CLI only builds a ``ServiceConfig``; ``service.server.Server`` runs it. Precedence, highest first:
command-line flags, environment variables, the config file (TOML or JSON), defaults.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from .engines import ENGINES, default_engine_name, default_workers
from .values import EngineOptions, IntList, Size
from .wire.limits import DEFAULT_SLOTS_PER_SEGMENT
from .wire.slots import MAX_SLOTS_PER_SEGMENT

MiB = 1024 * 1024


def default_socket_path() -> Path:
    """``$XDG_RUNTIME_DIR/shmbridge/ocr.sock``, else a per-uid directory under the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "shmbridge" if runtime else Path(tempfile.gettempdir()) / f"shmbridge-{os.getuid()}"
    return base / "ocr.sock"


class ServiceConfig(BaseSettings):
    """Everything ``shmbridge serve`` can be told. Sizes are bytes (or a size with a unit), times are seconds.

    Each field's ``description`` is the help line of its generated flag (``cli/serve_flags.py``): a field
    added here gets its flag, its ``SHMBRIDGE_*`` variable and its help with no other edit.
    """

    model_config = SettingsConfigDict(env_prefix="SHMBRIDGE_", extra="forbid", validate_default=True)

    # Engine
    engine: str = Field(default_factory=default_engine_name, description="OCR engine: " + ", ".join(ENGINES))
    engine_options: EngineOptions = Field(
        default_factory=dict, description="engine-specific options, KEY=VALUE (e.g. checksum_mode=full for null)"
    )
    engine_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="engine instances, each on a thread of its own (0: the engine's choice, rapidocr one per two "
        "CPUs, other engines 2)",
    )
    warm_up: bool = Field(default=True, description="run one OCR at startup so the first request is not slow")

    # Modes
    http_enabled: bool = Field(default=True, description="serve HTTP")
    http_host: str = Field(default="127.0.0.1", description="address HTTP listens on (0.0.0.0: every interface)")
    http_port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0 picks a free one)")
    access_log: bool = Field(
        default=True, description="log each HTTP request at INFO (method, path, status, bytes, time, request id)"
    )
    shm_enabled: bool = Field(default=True, description="serve shared-memory sessions on the Unix socket")
    socket_path: Path = Field(default_factory=default_socket_path, description="Unix socket for sessions")
    region_dir: Path | None = Field(
        default=None, description="directory for HTTP-registered shared regions (off when unset)"
    )

    # Peers allowed on the socket; empty gids means only the uid list decides.
    allowed_uids: IntList = Field(
        default_factory=lambda: [os.getuid()], description="peer uids allowed on the socket, comma-separated"
    )
    allowed_gids: IntList = Field(
        default_factory=list, description="peer primary gids allowed on the socket, comma-separated"
    )

    # Limits
    max_sessions: int = Field(default=64, ge=1, description="shared-memory sessions at once")
    session_bytes: Size = Field(default=512 * MiB, ge=MiB, description="shared memory one session may hold")
    total_bytes: Size = Field(default=4096 * MiB, ge=MiB, description="shared memory all sessions may hold")
    slots_per_segment: int = Field(
        default=DEFAULT_SLOTS_PER_SEGMENT, ge=1, le=MAX_SLOTS_PER_SEGMENT, description="frame slots per shared segment"
    )
    max_frame_bytes: Size = Field(default=128 * MiB, ge=4096, description="largest frame or HTTP body")
    max_pixels: int = Field(default=40_000_000, ge=1, description="largest image in pixels (width x height)")
    max_control_frame: Size = Field(default=1 * MiB, ge=4096, description="largest protocol control frame")
    max_regions_per_client: int = Field(default=16, ge=1, description="HTTP shared regions one client may hold")
    max_region_bytes: Size = Field(default=512 * MiB, ge=4096, description="bytes over all HTTP shared regions")
    max_regions: int = Field(
        default=256, ge=1, description="HTTP shared-memory regions over all clients (each holds one fd)"
    )
    max_segments_per_session: int = Field(
        default=64, ge=1, le=4096, description="shared-memory segments one session may hold (each holds one fd)"
    )
    max_pending_connections: int = Field(
        default=64,
        ge=1,
        description="socket connections that have not finished their HELLO; beyond it the oldest is shed",
    )
    http_body_bytes: Size = Field(
        default=512 * MiB,
        ge=MiB,
        description="bytes of HTTP request bodies held at once over all requests; beyond it 503 + Retry-After",
    )
    decode_timeout: float = Field(
        default=5.0, gt=0, description="seconds one encoded image may take to decode before a 413 answers it"
    )

    # Screen streams (streams/): limits, and when a stream reads the whole frame again.
    max_streams_per_session: int = Field(default=8, ge=1, description="screen streams one session may hold")
    max_streams_per_client: int = Field(
        default=8, ge=1, description="screen streams one HTTP client (X-Shmbridge-Client, else address) may hold"
    )
    max_streams: int = Field(default=256, ge=1, description="screen streams over all sessions and clients")
    max_stream_state_bytes: Size = Field(
        default=4 * MiB, ge=4096, description="bytes of state (fingerprints and lines) one stream may keep"
    )
    stream_idle_ttl: float = Field(
        default=300.0, gt=0, description="seconds an HTTP client's stream may sit unused before it is freed"
    )
    stream_keyframe_frames: int = Field(
        default=100, ge=0, description="a stream reads the whole frame at least every this many frames (0: never)"
    )
    stream_keyframe_seconds: float = Field(
        default=60.0, ge=0, description="a stream reads the whole frame at least every this many seconds (0: never)"
    )
    stream_keyframe_area: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="a stream reads the whole frame when what changed covers more than this fraction of it",
    )

    # Authentication of the HTTP door (the socket door checks peer uid/gid instead).
    api_token: SecretStr | None = Field(
        default=None,
        description="bearer token every HTTP request must carry, except /health* (and /metrics unless "
        "metrics_auth); set it with SHMBRIDGE_API_TOKEN or the config file, not on the command line",
    )
    metrics_auth: bool = Field(default=False, description="require the bearer token on /metrics too")

    # Admission and time
    max_in_flight: int = Field(default=0, ge=0, description="requests in the engines at once (0: engine workers)")
    queue_size: int = Field(default=64, ge=0, description="requests waiting for an engine before 503 Busy")
    request_timeout: float = Field(default=30.0, gt=0, description="seconds a request may wait and run")
    engine_timeout: float = Field(default=30.0, gt=0, description="seconds one engine call may take")
    drain_timeout: float = Field(default=10.0, gt=0, description="seconds shutdown lets running requests finish")
    retry_after: float = Field(default=1.0, gt=0, description="seconds a Busy answer tells the client to wait")

    # Latency: hold idle CPUs polling while sessions are busy (service/wakeups.py); off by default, since
    # it spends idle CPU time of the whole machine for lower wake-up latency.
    low_latency: bool = Field(
        default=False, description="keep idle CPUs polling while sessions are busy (needs /dev/cpu_dma_latency)"
    )
    low_latency_hold: float = Field(
        default=0.25, ge=0.01, le=60, description="seconds the low-latency hold lasts after a request"
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}; choose one of {sorted(ENGINES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        if not (self.http_enabled or self.shm_enabled):
            raise ValueError("at least one of HTTP and shared memory must be enabled")
        if self.session_bytes > self.total_bytes:
            raise ValueError("session_bytes cannot exceed total_bytes")
        if not self.engine_workers:
            self.engine_workers = default_workers(self.engine)
        return self

    @property
    def in_flight_limit(self) -> int:
        return self.max_in_flight or self.engine_workers

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> ServiceConfig:
        """Defaults < file < environment < ``overrides`` (flags). ``None`` overrides are ignored."""
        file_values = _read_config_file(config_file) if config_file else {}
        # The environment's values as given, not validated on their own: validating them against the
        # defaults would refuse combinations that are valid once the file and flags are merged in.
        env_values = EnvSettingsSource(cls)()
        given = {key: value for key, value in overrides.items() if value is not None}
        return cls(**{**file_values, **env_values, **given})


def _read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    data = tomllib.loads(text)
    return data.get("shmbridge", data)
