"""Tile fingerprints: equal frames agree, one changed pixel changes exactly its tile, views are read
in place and nothing of the frame is kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shmbridge.streams.fingerprint import DEFAULT_IGNORE_BITS, changed_tiles, fingerprint, shifted_tiles


def _frame(height: int, width: int, channels: int = 3, seed: int = 1) -> np.ndarray:
    frame = np.random.default_rng(seed).integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    frame.flags.writeable = False
    return frame


def test_equal_frames_give_equal_fingerprints_and_nothing_of_the_frame_is_kept() -> None:
    frame = _frame(1080, 1920)
    first, second = fingerprint(frame), fingerprint(frame.copy())
    assert first.grid == (34, 60) and first.rows.shape == (1080, 60)
    assert not changed_tiles(first, second).any()
    for array in (first.tiles, first.rows):
        assert not np.shares_memory(array, frame)
    assert first.nbytes < frame.nbytes // 10


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 130),
    width=st.integers(1, 130),
    channels=st.sampled_from([1, 3, 4]),
    data=st.data(),
)
def test_one_changed_pixel_changes_exactly_its_tile(
    height: int, width: int, channels: int, data: st.DataObject
) -> None:
    frame = _frame(height, width, channels)
    y, x = data.draw(st.integers(0, height - 1)), data.draw(st.integers(0, width - 1))
    edited = frame.copy()
    edited[y, x, data.draw(st.integers(0, channels - 1))] ^= np.uint8(data.draw(st.integers(1, 15)) << 4)
    if channels == 1:
        frame, edited = frame[:, :, 0], edited[:, :, 0]
    mask = changed_tiles(fingerprint(frame), fingerprint(edited))
    assert np.argwhere(mask).tolist() == [[y // 32, x // 32]]


def test_crops_and_strided_views_are_read() -> None:
    frame = _frame(300, 400)
    crop = frame[7:250, 5:333]  # unaligned rows: read byte by byte
    assert fingerprint(crop).tiles.shape == (8, 11)
    edited = frame.copy()
    edited[100, 100, 0] ^= 0x80
    mask = changed_tiles(fingerprint(crop), fingerprint(edited[7:250, 5:333]))
    assert np.argwhere(mask).tolist() == [[93 // 32, 95 // 32]]
    reversed_channels = frame[:, :, ::-1]  # not packed: made contiguous for the pass, not kept
    assert not changed_tiles(fingerprint(reversed_channels), fingerprint(np.ascontiguousarray(reversed_channels))).any()
    with pytest.raises(ValueError):
        fingerprint(np.zeros((0, 4, 3), np.uint8))


def test_shifted_tiles_predict_a_scrolled_frame() -> None:
    page = _frame(400, 96, seed=7)
    before, after = page[40:360], page[0:320]  # the content moved down by 40 rows
    moved, covered = shifted_tiles(fingerprint(before), 40)
    current = fingerprint(after)
    assert covered.tolist() == [False, False] + [True] * 8
    assert (current.tiles[2:] == moved[2:]).all()
    assert not (current.tiles[:2] == moved[:2]).any()


def test_repainting_a_level_or_two_is_not_a_change_unless_asked() -> None:
    frame = _frame(64, 64)
    edited = frame.copy()
    edited[10, 10, 1] = (edited[10, 10, 1] & 0xF0) | ((edited[10, 10, 1] + 1) & 0x0F)  # low bits only
    assert DEFAULT_IGNORE_BITS == 4
    assert not changed_tiles(fingerprint(frame), fingerprint(edited)).any()
    assert changed_tiles(fingerprint(frame, ignore_bits=0), fingerprint(edited, ignore_bits=0)).sum() == 1


@pytest.mark.parametrize(("width", "channels"), [(1920, 3), (1000, 3), (640, 4), (333, 1)])
def test_row_fingerprints_are_the_weighted_sums_they_are_defined_as(width: int, channels: int) -> None:
    """Whatever loop computes them (words or bytes, full tile columns and a partial last one), each row's
    fingerprint in a tile column is the sum of its masked bytes (read as little-endian words where a tile
    row is a whole number of words and rows start on a word) times fixed odd weights, modulo 2**64."""
    from shmbridge.streams.fingerprint import _weights

    frame = _frame(70, width, channels) if channels > 1 else _frame(70, width, 3)[:, :, 0].copy()
    prints = fingerprint(frame, 32, DEFAULT_IGNORE_BITS)
    flat = (frame.reshape(70, -1) & np.uint8(0xF0)).astype(np.uint8)
    tile_bytes = 32 * channels
    for column in range(prints.rows.shape[1]):
        part = np.ascontiguousarray(flat[:, column * tile_bytes : (column + 1) * tile_bytes])
        if part.shape[1] == tile_bytes and tile_bytes % 8 == 0 and flat.shape[1] % 8 == 0:
            part = part.view(np.uint64)
        expected = np.einsum("yk,k->y", part.astype(np.uint64), _weights(part.shape[1]), dtype=np.uint64)
        assert (prints.rows[:, column] == expected).all(), column
