"""The wire package's pieces both sides share: the slot ledger's owners, options to and from OCR_REQUEST,
the limits table, and the decoded pixel format of a Pillow mode."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from shmbridge import wire
from shmbridge.client.slots import SessionState
from shmbridge.config import ServiceConfig
from shmbridge.errors import ErrorCode, InvalidRequest, UsageError
from shmbridge.models import DEFAULT_OPTIONS, OcrOptions, PixelFormat, Roi
from shmbridge.wire import Owner, SlotLedger
from tests.bridge.protocol_v1_cases import CONFIG, FIXTURE

SLOT = 64 * 1024


@dataclass(eq=False)
class Lease:
    key: tuple[int, int]
    capacity: int = SLOT
    owner: Owner = Owner.CALLER


def _take(ledger: SlotLedger, nbytes: int = 1000) -> Lease:
    taken = ledger.take(nbytes)
    assert taken is not None
    return Lease(taken)


# -- the ledger ------------------------------------------------------------------------------------


def test_a_slot_has_one_owner_from_lease_to_reply_to_return() -> None:
    ledger = SlotLedger()
    ledger.add_segment(1, SLOT, 2)
    lease = _take(ledger)
    assert lease.key == (1, 0) and lease.owner is Owner.CALLER
    ledger.submitted(lease)
    assert lease.owner is Owner.SERVICE
    with pytest.raises(UsageError, match="not yours"):
        ledger.submitted(lease)  # the same slot twice in flight
    with pytest.raises(UsageError, match="still the service's"):
        ledger.give_back(lease)
    ledger.replied(lease)
    assert lease.owner is Owner.CALLER
    ledger.give_back(lease)
    assert lease.owner is Owner.FREE
    with pytest.raises(UsageError, match="already returned"):
        ledger.give_back(lease)
    assert _take(ledger).key == (1, 0)  # last in, first out


def test_an_abandoned_slot_stays_the_services_until_its_late_reply() -> None:
    ledger = SlotLedger()
    ledger.add_segment(1, SLOT, 1)
    lease = _take(ledger)
    ledger.submitted(lease)
    ledger.abandon(7, lease)
    assert lease.owner is Owner.SERVICE and ledger.take(1000) is None
    assert ledger.reclaim(8) is None
    assert ledger.reclaim(7) is lease and lease.owner is Owner.CALLER
    ledger.give_back(lease)
    assert lease.owner is Owner.FREE and ledger.reclaim(7) is None
    assert _take(ledger).key == (1, 0)
    other = Lease((2, 0), owner=Owner.SERVICE)
    ledger.abandon(9, other, replied=True)  # the reply came in before the caller gave up
    assert other.owner is Owner.CALLER and ledger.reclaim(9) is None


def test_the_smallest_fitting_class_is_taken_and_a_closed_ledger_takes_nothing_back() -> None:
    ledger = SlotLedger()
    ledger.add_segment(1, 4 * SLOT, 1)
    ledger.add_segment(2, SLOT, 1)
    assert ledger.has_class_for(SLOT) and not ledger.has_class_for(5 * SLOT)
    assert ledger.take(10)[0] == 2  # type: ignore[index]
    assert ledger.take(10)[0] == 1  # type: ignore[index]
    lease = Lease((1, 0), 4 * SLOT)
    ledger.clear()
    ledger.give_back(lease)
    assert lease.owner is Owner.FREE and not ledger.free


def test_a_session_state_lease_is_the_services_from_request_to_reply() -> None:
    state = SessionState()
    rid, _ = state.hello()
    state.feed(wire.encode(wire.Welcome(rid, 1, "s", {"slots_per_segment": 2})), [])
    assert state.slots_per_segment == 2
    rid, _ = state.alloc(100)
    fd = os.memfd_create("ledger-test", os.MFD_CLOEXEC)
    os.ftruncate(fd, SLOT)
    state.feed(wire.encode(wire.SegmentGranted(rid, 1, SLOT, 1)), [fd])
    try:
        lease = state.try_lease(100)
        assert lease is not None and lease.held
        frame = lease.frame(10, 10)
        rid, _ = state.ocr_request(lease, frame, PixelFormat.RGB, None)
        assert lease.owner is Owner.SERVICE and lease.released
        assert state.result_of(wire.Result(rid, {"text": "x"}), lease).text == "x"
        assert lease.owner is Owner.CALLER
        state.give_back(lease)
        assert lease.owner is Owner.FREE and lease.array is None
        del frame
    finally:
        state.close()


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize("roi", [Roi(x=1, y=2, width=3, height=4), (1, 2, 3, 4), [1, 2, 3, 4], "1,2,3,4"])
def test_every_spelling_of_a_region_is_the_same_region(roi: object) -> None:
    options = wire.options_from_fields(roi=roi, languages=["de-DE"], keyframe=None)
    assert options.roi == Roi(x=1, y=2, width=3, height=4) and options.languages == ("de-DE",)
    assert wire.roi_text(options.roi) == "1,2,3,4" and wire.roi_to_wire(options.roi) == (1, 2, 3, 4)


def test_options_from_fields_names_what_is_wrong() -> None:
    assert wire.options_from_fields() is DEFAULT_OPTIONS
    base = OcrOptions(languages=("fr-FR",))
    assert wire.options_from_fields(base, custom_words=["a"]).languages == ("fr-FR",)
    with pytest.raises(InvalidRequest) as info:
        wire.options_from_fields(langauges=["en"])
    assert info.value.code == ErrorCode.UNKNOWN_OPTION and "langauges" in info.value.message
    with pytest.raises(InvalidRequest) as info:
        wire.options_from_fields(minimum_text_height=5)
    assert info.value.code == ErrorCode.INVALID_REQUEST and "minimum_text_height" in info.value.message
    with pytest.raises(InvalidRequest, match="roi"):
        wire.options_from_fields(roi=(1, 2, 3))


@pytest.mark.parametrize(
    "options",
    [
        DEFAULT_OPTIONS,
        OcrOptions(recognition_level="fast", languages=("de-DE", "fr-FR"), minimum_text_height=0.5),
        OcrOptions(roi=Roi(x=0, y=5, width=6, height=7)),
        OcrOptions(stream="screen", keyframe=True, delta=True, roi=Roi(x=1, y=1, width=1, height=1)),
    ],
)
def test_options_travel_in_an_ocr_request_and_come_back_equal(options: OcrOptions) -> None:
    roi, extra = wire.request_options(options)
    assert "roi" not in extra
    request = wire.OcrRequest(1, 1, 0, 0, 10, 10, 3, "rgb", 30, roi, extra)
    decoder = wire.FrameDecoder()
    decoder.receive_data(wire.encode(request))
    frame = decoder.next_frame()
    assert frame is not None
    assert wire.options_of(wire.decode_event(frame)) == options  # type: ignore[arg-type]


def test_the_defaults_travel_as_no_options_and_a_region_never_in_the_json() -> None:
    assert wire.request_options(None) == wire.request_options(DEFAULT_OPTIONS) == (None, {})
    with pytest.raises(InvalidRequest) as info:
        wire.options_of(wire.OcrRequest(1, 1, 0, 0, 10, 10, 3, "rgb", 30, None, {"roi": [0, 0, 1, 1]}))
    assert info.value.code == ErrorCode.UNKNOWN_OPTION


# -- limits and media -------------------------------------------------------------------------------


def test_welcome_limits_are_the_v1_fixtures_and_info_keeps_its_keys() -> None:
    import json

    config = ServiceConfig(**CONFIG)
    pinned = next(r for r in json.loads(FIXTURE.read_text())["frames"] if r["name"] == "service/welcome")
    assert list(wire.welcome_limits(config).items()) == list(pinned["fields"]["limits"].items())
    info = wire.info_limits(config, max_json_body_bytes=5)
    assert set(info) == {
        "max_frame_bytes", "max_pixels", "max_json_body_bytes", "max_in_flight", "queue_size", "request_timeout",
        "engine_timeout", "max_sessions", "session_bytes", "total_bytes", "slots_per_segment",
        "max_regions_per_client", "max_region_bytes",
    }  # fmt: skip
    assert info["max_in_flight"] == config.in_flight_limit and info["max_json_body_bytes"] == 5
    assert wire.slots_per_segment({}) == wire.DEFAULT_SLOTS_PER_SEGMENT == ServiceConfig().slots_per_segment
    assert wire.slots_per_segment(info) == 3


@pytest.mark.parametrize(
    ("mode", "info", "expected"),
    [
        ("RGBA", {}, ("RGBA", PixelFormat.RGBA)),
        ("P", {"transparency": 0}, ("RGBA", PixelFormat.RGBA)),
        ("P", {}, ("RGB", PixelFormat.RGB)),
        ("I;16", {}, ("L", PixelFormat.GRAY)),
        ("1", {}, ("L", PixelFormat.GRAY)),
        ("CMYK", {}, ("RGB", PixelFormat.RGB)),
    ],
)
def test_a_pillow_mode_decodes_to_one_pixel_format_on_both_sides(
    mode: str, info: dict[str, int], expected: tuple[str, PixelFormat]
) -> None:
    assert wire.decoded_mode(mode, info) == expected
