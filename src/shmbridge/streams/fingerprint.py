"""Tile and row fingerprints of a frame, in one vectorised pass over a read-only view.

It owns the hashing of pixels into two small arrays: one 64-bit fingerprint per tile (what changed) and
one per pixel row of each tile column (what moved, for scroll detection). Row fingerprints do not depend
on the row's position, so the same content a few rows lower hashes the same; tile fingerprints do.

What it must never do: write to the view, or keep it (or a copy of its pixels) after ``fingerprint``
returns. The pixels are read as 64-bit words where the row layout allows it (eight bytes per operation
instead of one); the arithmetic wraps modulo 2**64 on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Tile edge in pixels (the issue's 32×32 tiles).
DEFAULT_TILE = 32
#: Low bits of each byte left out of the fingerprints (see ``fingerprint``).
DEFAULT_IGNORE_BITS = 4

_WORD = 8  # bytes per uint64


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """The fingerprints of one frame: all a stream keeps of its pixels."""

    #: (tile rows, tile columns) uint64: one fingerprint per tile.
    tiles: np.ndarray
    #: (height, tile columns) uint64: one position-free fingerprint per pixel row of each tile column.
    rows: np.ndarray
    #: The frame's shape (height, width, channels) and the tile edge used.
    shape: tuple[int, int, int]
    tile: int

    @property
    def nbytes(self) -> int:
        return int(self.tiles.nbytes + self.rows.nbytes)

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.tiles.shape[0]), int(self.tiles.shape[1])


#: Rows fingerprinted per pass: a band of a 1080p frame's rows (under a MB) fits in L2 with room to spare.
_BAND = 128


def fingerprint(view: np.ndarray, tile: int = DEFAULT_TILE, ignore_bits: int = DEFAULT_IGNORE_BITS) -> Fingerprints:
    """Fingerprint ``view`` (H×W or H×W×C uint8) by ``tile``×``tile`` tiles.

    The lowest ``ignore_bits`` bits of every byte are left out: a browser repaints text a level or two
    differently when focus moves elsewhere, and that is not a change worth reading again. A change of
    ``2**ignore_bits`` levels or more always changes the fingerprint; smaller ones only sometimes.

    Edge tiles are partial when the size is not a multiple of ``tile``. Views whose rows are packed
    runs of bytes (a frame, or a crop of one) are read in place; any other strides (a reversed
    channel order, a subsampled view) are first made contiguous, a temporary copy that is not kept.
    """
    if view.dtype != np.uint8 or view.ndim not in (2, 3) or view.shape[0] == 0 or view.shape[1] == 0:
        raise ValueError(f"fingerprints take non-empty H×W(×C) uint8 pixels, not {view.dtype} {view.shape}")
    height, width = int(view.shape[0]), int(view.shape[1])
    channels = 1 if view.ndim == 2 else int(view.shape[2])
    if not _rows_flatten(view):
        view = np.ascontiguousarray(view)
    flat = view.reshape(height, width * channels)  # a view: each row is one packed run of bytes
    tile_bytes = tile * channels
    full = width // tile
    parts = []
    if full:
        main = flat[:, : full * tile_bytes]
        if tile_bytes % _WORD == 0 and main.strides[0] % _WORD == 0 and main.ctypes.data % _WORD == 0:
            main = main.view(np.uint64)  # eight bytes per operation, still a view
        parts.append(_weighted_rows(main, full, ignore_bits))
    if width % tile:
        tail = _masked(flat[:, full * tile_bytes :], ignore_bits)
        parts.append(np.einsum("yk,k->y", tail, _weights(tail.shape[1]), dtype=np.uint64)[:, None])
    rows = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return Fingerprints(tiles=_tiles_from_rows(rows, tile), rows=rows, shape=(height, width, channels), tile=tile)


def _weighted_rows(main: np.ndarray, full: int, ignore_bits: int) -> np.ndarray:
    """Each row's weighted sum per tile column, over bands of ``_BAND`` rows: a band's masked copy stays
    in the caches between the mask and the sum, where a whole frame's would go out to memory and back.
    The matmul multiplies and sums in one pass without materialising the products (uint64, wrapping)."""
    height = main.shape[0]
    per_tile = main.shape[1] // full
    weights = _weights(per_tile)
    out = np.empty((height, full), np.uint64)
    scratch = np.empty((min(_BAND, height), main.shape[1]), main.dtype) if ignore_bits else None
    for top in range(0, height, _BAND):
        band = main[top : top + _BAND]
        if scratch is not None:
            band = _masked(band, ignore_bits, out=scratch[: band.shape[0]])
        # uint64 matmul: the products and sums wrap modulo 2**64 exactly as einsum's, in a faster loop.
        out[top : top + band.shape[0]] = band.reshape(band.shape[0], full, per_tile) @ weights
    return out


def _masked(pixels: np.ndarray, ignore_bits: int, out: np.ndarray | None = None) -> np.ndarray:
    """``pixels`` with the low bits of every byte cleared (a temporary array, dropped after the pass)."""
    if not ignore_bits:
        return pixels
    byte_mask = (0xFF << ignore_bits) & 0xFF
    mask = int.from_bytes(bytes([byte_mask]) * pixels.dtype.itemsize, "little")
    return np.bitwise_and(pixels, pixels.dtype.type(mask), out=out)


def _tiles_from_rows(rows: np.ndarray, tile: int) -> np.ndarray:
    height = rows.shape[0]
    return np.add.reduceat(rows * _row_weights(height, tile)[:, None], np.arange(0, height, tile), axis=0)


def changed_tiles(previous: Fingerprints, current: Fingerprints) -> np.ndarray:
    """A (tile rows, tile columns) bool mask of the tiles whose fingerprints differ."""
    return np.asarray(previous.tiles != current.tiles)


def shifted_rows(previous: Fingerprints, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """The row fingerprints the previous frame's content has once moved down by ``shift`` rows (up when
    negative), and which rows that content covers (the rest came from outside the previous frame)."""
    height = previous.shape[0]
    rows = np.zeros_like(previous.rows)
    known = np.zeros(height, dtype=bool)
    if shift >= 0:
        rows[shift:] = previous.rows[: height - shift]
        known[shift:] = True
    else:
        rows[: height + shift] = previous.rows[-shift:]
        known[: height + shift] = True
    return rows, known


def shifted_tiles(previous: Fingerprints, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """The tile fingerprints of the previous frame's content moved by ``shift`` rows, and a mask (one
    entry per tile row) of the tiles that content fully covers (the others cannot match)."""
    rows, known = shifted_rows(previous, shift)
    covered = np.logical_and.reduceat(known, np.arange(0, previous.shape[0], previous.tile))
    return _tiles_from_rows(rows, previous.tile), covered


def changed_rows(
    reference: np.ndarray, current: Fingerprints, top: int, bottom: int, columns: slice, known: np.ndarray | None = None
) -> tuple[int, int]:
    """The first and one past the last row in [top, bottom) where ``current`` differs from the
    ``reference`` row fingerprints in any of ``columns``; (top, bottom) when none does.

    Rows the reference does not know (``known`` False: newly exposed by a scroll) that repeat the row
    next to them are background continuing into the new band, and are trimmed from either end.
    """
    rows = current.rows[:, columns]
    changed = np.flatnonzero((reference[top:bottom, columns] != rows[top:bottom]).any(axis=1))
    if changed.size == 0:
        return top, bottom
    first, last = top + int(changed[0]), top + int(changed[-1]) + 1
    if known is not None:
        while first < last and first > 0 and not known[first] and (rows[first] == rows[first - 1]).all():
            first += 1
        while last > first and last < rows.shape[0] and not known[last - 1] and (rows[last - 1] == rows[last]).all():
            last -= 1
    return (first, last) if last > first else (top, bottom)


def _rows_flatten(view: np.ndarray) -> bool:
    """Whether each pixel row is one contiguous run of bytes (true of any full-width or cropped view
    whose pixels are packed), so a row can be read as one line of bytes without a copy."""
    if view.ndim == 2:
        return view.strides[1] == 1
    return view.strides[2] == 1 and view.strides[1] == view.shape[2]


@lru_cache(maxsize=16)
def _weights(count: int) -> np.ndarray:
    """Odd 64-bit multipliers, one per byte or word of a tile's row (fixed seed: fingerprints are
    comparable across streams and runs). The same for every tile column, so a row's fingerprint in
    one column does not depend on where the column is either."""
    generator = np.random.default_rng(0x5EED + count)
    weights = generator.integers(0, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=16)
def _row_weights(height: int, tile: int) -> np.ndarray:
    """Multipliers by a row's place inside its tile, so swapping two rows of a tile changes the tile."""
    generator = np.random.default_rng(0xF00D + tile)
    per_place = generator.integers(0, 2**63, size=tile, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    weights = per_place[np.arange(height) % tile]
    weights.flags.writeable = False
    return weights
