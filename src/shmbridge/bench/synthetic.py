"""Synthetic screen images with exact ground truth, shared by the engine tests and the benchmarks.

It owns three images drawn with Pillow and Debian's DejaVu fonts: a 1920×1080 desktop (title bar, menus,
toolbar buttons, paragraphs at 12-16 px, a table, a dark terminal and a dialog), an 800×200 text panel
and a 300×60 button. Each comes with the text of every line and the line's ink box (the tight box around
the pixels the text really painted, measured from the glyph masks, not estimated from font metrics).

Rules: drawing is deterministic (same fonts, same pixels), images are RGB ``uint8`` and C-contiguous, and
every labelled item stands far enough from its neighbours that any reader sees it as its own line. It
never touches the network and never writes files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..models import Box

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_PACKAGE = "fonts-dejavu-core"

Color = tuple[int, int, int]


class TruthLine(NamedTuple):
    """One line of known text and the pixel box its ink covers (top-left origin)."""

    text: str
    box: Box


Labelled = tuple[np.ndarray, list[TruthLine]]


def fonts_available() -> bool:
    """Whether the DejaVu fonts these images need are installed."""
    return all((FONT_DIR / name).is_file() for name in _FONT_FILES.values())


_FONT_FILES = {
    "sans": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "serif": "DejaVuSerif.ttf",
}


@lru_cache(maxsize=64)
def _font(kind: str, size: int) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / _FONT_FILES[kind]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: apt-get install {FONT_PACKAGE}")
    return ImageFont.truetype(str(path), size)


class _Canvas:
    """A Pillow canvas that records the ink box of every labelled text it draws."""

    def __init__(self, width: int, height: int, background: Color) -> None:
        self.image = Image.new("RGB", (width, height), background)
        self.draw = ImageDraw.Draw(self.image)
        self.truth: list[TruthLine] = []

    def rect(self, box: tuple[int, int, int, int], fill: Color, outline: Color | None = None, r: int = 0) -> None:
        """Fill ``box`` given as (x0, y0, x1, y1), inclusive of x1/y1 as in Pillow."""
        if r:
            self.draw.rounded_rectangle(box, radius=r, fill=fill, outline=outline)
        else:
            self.draw.rectangle(box, fill=fill, outline=outline)

    def text(self, x: int, y: int, text: str, kind: str, size: int, fill: Color) -> Box:
        """Draw one labelled line with its top-left pen position at (x, y); return its ink box."""
        font = _font(kind, size)
        self.draw.text((x, y), text, font=font, fill=fill)
        box = _ink_box(font, text, x, y)
        self.truth.append(TruthLine(text, box))
        return box

    def runs(self, x: int, y: int, parts: list[tuple[str, Color]], kind: str, size: int) -> Box:
        """One labelled line painted in several colours (a shell prompt followed by a command)."""
        font = _font(kind, size)
        pen = float(x)
        for part, fill in parts:
            self.draw.text((pen, y), part, font=font, fill=fill)
            pen += font.getlength(part)
        text = "".join(part for part, _ in parts)
        box = _ink_box(font, text, x, y)
        self.truth.append(TruthLine(text, box))
        return box

    def centred(self, box: tuple[int, int, int, int], text: str, kind: str, size: int, fill: Color) -> Box:
        """A labelled line centred in ``box`` (x0, y0, x1, y1), as on a button or a title bar."""
        font = _font(kind, size)
        left, top, right, bottom = font.getbbox(text)
        x = (box[0] + box[2] - (right - left)) // 2 - left
        y = (box[1] + box[3] - (bottom - top)) // 2 - top
        return self.text(x, y, text, kind, size, fill)

    def button(self, box: tuple[int, int, int, int], text: str, size: int = 13, primary: bool = False) -> Box:
        fill, border, ink = (
            ((53, 132, 228), (28, 99, 190), (255, 255, 255))
            if primary
            else (
                (246, 245, 244),
                (192, 191, 188),
                (40, 40, 40),
            )
        )
        self.rect(box, fill, border, r=5)
        return self.centred(box, text, "sans", size, ink)

    def array(self) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(self.image, dtype=np.uint8))


def _ink_box(font: ImageFont.FreeTypeFont, text: str, x: float, y: float) -> Box:
    """The tight box of the pixels ``text`` paints at pen position (x, y), from the glyph mask itself."""
    mask, (ox, oy) = font.getmask2(text, mode="L")
    inner = mask.getbbox()
    if inner is None:
        raise ValueError(f"{text!r} paints no pixels")
    x0, y0, x1, y1 = inner
    left = int(np.floor(x)) + ox + x0
    top = int(np.floor(y)) + oy + y0
    return Box(x=left, y=top, width=x1 - x0, height=y1 - y0)


# -- the 1080p desktop --------------------------------------------------------------------------------

_PARAGRAPHS: list[tuple[str, int, list[str]]] = [
    (
        "sans",
        16,
        [
            "Revenue grew in every region this quarter, led by strong demand for the",
            "new subscription plans. Operating costs stayed flat while the support team",
            "answered twice as many tickets with the same number of people.",
        ],
    ),
    (
        "serif",
        14,
        [
            "The board asked for a clearer view of churn by customer size. The table below",
            "shows revenue by region in thousands of euros, before tax and after refunds.",
            "Figures for March are preliminary and will be confirmed on 14 April.",
        ],
    ),
    (
        "sans",
        12,
        [
            "Note: totals may not add up because of rounding. Contact finance@example.com for",
            "the detailed ledger or open the shared folder Reports/2024/Q1 on the file server.",
        ],
    ),
]

_TABLE = [
    ["Region", "January", "February", "March", "Total"],
    ["North", "1,204", "1,318", "1,402", "3,924"],
    ["South", "986", "1,051", "1,127", "3,164"],
    ["East", "1,530", "1,498", "1,611", "4,639"],
    ["West", "874", "902", "955", "2,731"],
    ["Online", "2,311", "2,486", "2,702", "7,499"],
]

_TERMINAL: list[list[tuple[str, str]]] = [
    [("dev@workstation:~/report$ ", "prompt"), ("git status", "text")],
    [("On branch main", "text")],
    [("Your branch is up to date with 'origin/main'.", "text")],
    [("Changes not staged for commit:", "text")],
    [("modified: src/report/build.py", "red")],
    [("modified: tests/test_build.py", "red")],
    [("dev@workstation:~/report$ ", "prompt"), ("python -m pytest -q", "text")],
    [("42 passed, 1 skipped in 3.51s", "green")],
    [("dev@workstation:~/report$ ", "prompt"), ("ls docs", "text")],
    [("index.md install.md usage.md", "blue")],
]
_TERMINAL_COLOURS: dict[str, Color] = {
    "prompt": (138, 226, 52),
    "text": (211, 215, 207),
    "red": (239, 41, 41),
    "green": (78, 154, 6),
    "blue": (114, 159, 207),
}


def desktop_1080p() -> Labelled:
    """A 1920×1080 RGB desktop with every labelled line and its ink box, in drawing order."""
    c = _Canvas(1920, 1080, (46, 52, 64))
    _top_panel(c)
    _editor_window(c, 40, 56, 1240, 1000)
    _terminal_window(c, 1290, 56, 1880, 600)
    _dialog(c, 1330, 660, 1840, 880)
    _dock(c)
    return c.array(), c.truth


def _top_panel(c: _Canvas) -> None:
    c.rect((0, 0, 1919, 31), (24, 24, 24))
    light = (238, 238, 236)
    c.text(16, 8, "Activities", "sans", 14, light)
    c.centred((860, 0, 1060, 31), "Tue 9 April 14:32", "bold", 14, light)
    c.text(1780, 8, "Battery 86%", "sans", 13, light)


def _editor_window(c: _Canvas, x0: int, y0: int, x1: int, y1: int) -> None:
    c.rect((x0, y0, x1, y1), (255, 255, 255), (160, 160, 160))
    # Title bar with window controls drawn as plain discs: icons, not text.
    c.rect((x0, y0, x1, y0 + 38), (230, 230, 230))
    for i, colour in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        cx = x0 + 20 + i * 22
        c.draw.ellipse((cx - 6, y0 + 13, cx + 6, y0 + 25), fill=colour)
    c.centred((x0, y0, x1, y0 + 38), "Quarterly Report - Writer", "bold", 15, (46, 52, 54))
    # Menu bar.
    c.rect((x0 + 1, y0 + 39, x1 - 1, y0 + 68), (246, 246, 246))
    x = x0 + 16
    for item in ["File", "Edit", "View", "Insert", "Format", "Tools", "Help"]:
        box = c.text(x, y0 + 46, item, "sans", 14, (30, 30, 30))
        x = int(box.x + box.width) + 36
    # Toolbar buttons.
    x = x0 + 12
    for label in ["New", "Open", "Save", "Export PDF", "Print"]:
        width = int(_font("sans", 13).getlength(label)) + 36
        c.button((x, y0 + 76, x + width, y0 + 104), label)
        x += width + 14
    # Heading, paragraphs and table.
    y = y0 + 132
    c.text(x0 + 60, y, "Quarterly Report", "bold", 24, (20, 20, 20))
    y += 52
    for kind, size, lines in _PARAGRAPHS:
        for line in lines:
            c.text(x0 + 60, y, line, kind, size, (33, 33, 33))
            y += int(size * 1.6)
        y += 22
    _table(c, x0 + 60, y + 8)
    # Status bar.
    c.rect((x0 + 1, y1 - 30, x1 - 1, y1 - 1), (240, 240, 240))
    grey = (80, 80, 80)
    c.text(x0 + 16, y1 - 23, "Page 2 of 14", "sans", 12, grey)
    c.text(x0 + 420, y1 - 23, "Words: 3,412", "sans", 12, grey)
    c.text(x1 - 140, y1 - 23, "English (USA)", "sans", 12, grey)


def _table(c: _Canvas, x0: int, y0: int) -> None:
    col_w, row_h = 170, 34
    grid = (200, 200, 200)
    width = col_w * len(_TABLE[0])
    c.rect((x0, y0, x0 + width, y0 + row_h), (237, 241, 247))
    for r, row in enumerate(_TABLE):
        top = y0 + r * row_h
        c.draw.line((x0, top, x0 + width, top), fill=grid)
        for col, cell in enumerate(row):
            kind = "bold" if r == 0 else "sans"
            font = _font(kind, 14)
            left = x0 + col * col_w + 14
            if col > 0 and r > 0:  # numbers align right, as in a spreadsheet
                left = x0 + (col + 1) * col_w - 14 - int(font.getlength(cell))
            c.text(left, top + 9, cell, kind, 14, (30, 30, 30))
    bottom = y0 + len(_TABLE) * row_h
    c.draw.line((x0, bottom, x0 + width, bottom), fill=grid)
    for col in range(len(_TABLE[0]) + 1):
        c.draw.line((x0 + col * col_w, y0, x0 + col * col_w, bottom), fill=grid)


def _terminal_window(c: _Canvas, x0: int, y0: int, x1: int, y1: int) -> None:
    c.rect((x0, y0, x1, y0 + 34), (60, 60, 60))
    c.centred((x0, y0, x1, y0 + 34), "dev@workstation: ~/report", "bold", 14, (230, 230, 230))
    c.rect((x0, y0 + 35, x1, y1), (30, 30, 30))
    y = y0 + 52
    for parts in _TERMINAL:
        coloured = [(text, _TERMINAL_COLOURS[colour]) for text, colour in parts]
        indent = 32 if parts[0][1] == "red" else 0
        c.runs(x0 + 14 + indent, y, coloured, "mono", 14)
        y += 26
    # A cursor block after the last prompt, as a real terminal shows it.
    c.runs(x0 + 14, y, [("dev@workstation:~/report$ ", _TERMINAL_COLOURS["prompt"])], "mono", 14)


def _dialog(c: _Canvas, x0: int, y0: int, x1: int, y1: int) -> None:
    c.rect((x0 + 6, y0 + 6, x1 + 6, y1 + 6), (20, 24, 30))  # shadow
    c.rect((x0, y0, x1, y1), (250, 250, 250), (150, 150, 150), r=8)
    c.centred((x0, y0 + 8, x1, y0 + 40), "Save changes?", "bold", 15, (20, 20, 20))
    c.text(x0 + 24, y0 + 62, "Do you want to save the changes to report.odt?", "sans", 14, (40, 40, 40))
    c.text(x0 + 24, y0 + 88, "Your changes will be lost if you close without saving.", "sans", 13, (90, 90, 90))
    c.button((x0 + 20, y1 - 52, x0 + 140, y1 - 20), "Don't Save", 14)
    c.button((x1 - 250, y1 - 52, x1 - 150, y1 - 20), "Cancel", 14)
    c.button((x1 - 130, y1 - 52, x1 - 20, y1 - 20), "Save", 14, primary=True)


def _dock(c: _Canvas) -> None:
    c.rect((1290, 1028, 1880, 1072), (30, 30, 30), r=10)
    x = 1316
    for label in ["Files", "Terminal", "Writer", "Settings"]:
        box = c.text(x, 1041, label, "sans", 14, (238, 238, 236))
        x = int(box.x + box.width) + 60


# -- small images --------------------------------------------------------------------------------------


def button_300x60(label: str = "Export as PDF") -> Labelled:
    """A 300×60 push button, as a caller would crop it from a screen."""
    c = _Canvas(300, 60, (236, 236, 236))
    c.button((8, 8, 291, 51), label, size=18)
    return c.array(), c.truth


def panel_800x200() -> Labelled:
    """An 800×200 notification panel: a bold title and three lines of body text."""
    c = _Canvas(800, 200, (252, 252, 252))
    c.rect((0, 0, 799, 199), (252, 252, 252), (200, 200, 200))
    c.text(24, 18, "Backup completed", "bold", 20, (20, 20, 20))
    body = [
        "All 1,284 files were copied to the external drive in 3 minutes.",
        "The next backup is scheduled for Friday at 18:00.",
        "Open the settings to change the schedule or the target folder.",
    ]
    for i, line in enumerate(body):
        c.text(24, 70 + i * 36, line, "sans", 16, (60, 60, 60))
    return c.array(), c.truth


def truth_inside(truth: list[TruthLine], x: int, y: int, width: int, height: int) -> list[TruthLine]:
    """The labelled lines whose ink lies wholly inside a region, as a region of interest would see them."""
    return [
        line
        for line in truth
        if line.box.x >= x
        and line.box.y >= y
        and line.box.x + line.box.width <= x + width
        and line.box.y + line.box.height <= y + height
    ]


__all__ = [
    "FONT_DIR",
    "TruthLine",
    "button_300x60",
    "desktop_1080p",
    "fonts_available",
    "panel_800x200",
    "truth_inside",
]
