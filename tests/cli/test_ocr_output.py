"""``shmbridge ocr`` on the shared screenshots, through a real rapidocr service: every format, every kind of
input, and ``--draw``. TSV has Tesseract's 12 columns, hOCR is well-formed XHTML, ALTO is namespaced XML."""

from __future__ import annotations

import importlib.util
import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shmbridge.draw import PALETTE
from shmbridge.output import ALTO_NAMESPACE, TSV_COLUMNS, XHTML_NAMESPACE
from tests.support.service import RunningService, running_service

from .conftest import SCREENS, clean_env, shmbridge

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="rapidocr is not installed"),
]


@pytest.fixture(scope="module")
def rapidocr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("rapidocr"), "--workers", "1", engine="rapidocr") as service:
        yield service


def _ocr(service: RunningService, *args: str, stdin: bytes | None = None):  # type: ignore[no-untyped-def]
    return shmbridge("ocr", *args, env=clean_env(SHMBRIDGE_URL=service.url), stdin=stdin)


def test_text(rapidocr: RunningService, screen: Path) -> None:
    text = _ocr(rapidocr, str(screen))
    assert text.returncode == 0, text.stderr
    assert "sign in" in text.stdout.lower() and text.stderr == ""


def test_tsv_has_tesseracts_twelve_columns(rapidocr: RunningService, screen: Path, tmp_path: Path) -> None:
    written = tmp_path / "out.tsv"
    pattern = str(screen.parent / "crop-bootstrap-sign*.png")  # a glob, written to -o FILE
    done = _ocr(rapidocr, pattern, "--format", "tsv", "-o", str(written))
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in written.read_text().rstrip("\n").split("\n")]
    assert tuple(rows[0]) == TSV_COLUMNS
    assert all(len(row) == 12 for row in rows), [row for row in rows if len(row) != 12]
    assert rows[1][:2] == ["1", "1"] and rows[1][8:10] == ["362", "494"]  # the page row: its size
    words = [row for row in rows[1:] if row[0] == "5"]
    assert "Please" in [row[11] for row in words]
    assert all(0 <= float(row[10]) <= 100 for row in words)
    assert all(row[10] == "-1" for row in rows[1:] if row[0] != "5")


def test_hocr_is_well_formed_xhtml_with_tesseracts_classes(rapidocr: RunningService, screen: Path) -> None:
    done = _ocr(rapidocr, str(screen), "--format", "hocr")
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout.encode())
    ns = {"h": XHTML_NAMESPACE}
    assert root.tag == f"{{{XHTML_NAMESPACE}}}html"
    (page,) = root.findall(".//h:div[@class='ocr_page']", ns)
    assert "bbox 0 0 362 494" in page.attrib["title"]
    lines = root.findall(".//h:span[@class='ocr_line']", ns)
    words = root.findall(".//h:span[@class='ocrx_word']", ns)
    assert lines and "Please" in [word.text for word in words]
    assert all("x_wconf" in word.attrib["title"] for word in words)


def test_alto_is_namespaced_xml_with_pages_lines_and_strings(rapidocr: RunningService, screen: Path) -> None:
    done = _ocr(rapidocr, str(screen), "--format", "alto")
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout.encode())
    ns = {"a": ALTO_NAMESPACE}
    assert root.tag == f"{{{ALTO_NAMESPACE}}}alto"
    assert root.find("a:Description/a:MeasurementUnit", ns).text == "pixel"  # type: ignore[union-attr]
    (page,) = root.findall("a:Layout/a:Page", ns)
    assert (page.attrib["WIDTH"], page.attrib["HEIGHT"]) == ("362", "494")
    strings = page.findall(".//a:TextLine/a:String", ns)
    assert "Please" in [string.attrib["CONTENT"] for string in strings]
    assert all(0 <= float(string.attrib["WC"]) <= 1 for string in strings)


def test_a_directory_gives_one_file_per_image(rapidocr: RunningService, tmp_path: Path) -> None:
    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    for name in ("crop-bootstrap-signin.png", "crop-bootstrap-modal.png"):
        if not (SCREENS / name).exists():
            pytest.skip(f"{SCREENS / name} is absent")
        shutil.copy(SCREENS / name, folder / name)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    done = _ocr(rapidocr, str(tmp_path / "in"), "--format", "hocr", "--output-dir", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["crop-bootstrap-modal.hocr", "crop-bootstrap-signin.hocr"]
    for path in out.iterdir():
        ET.parse(path)  # each one a well-formed document


def test_stdin_json_and_draw_puts_boxes_where_the_lines_are(
    rapidocr: RunningService, screen: Path, tmp_path: Path
) -> None:
    drawn_path = tmp_path / "drawn.png"
    done = _ocr(rapidocr, "-", "--json", "--draw", str(drawn_path), stdin=screen.read_bytes())
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["file"] == "-" and result["communication_mode"] == "shared_memory"
    assert "sign in" in result["text"].lower()
    original = np.asarray(Image.open(screen).convert("RGB")).astype(int)
    drawn = np.asarray(Image.open(drawn_path)).astype(int)
    assert drawn.shape == original.shape

    truth = json.loads(screen.with_suffix(".json").read_text())
    please = next(word for word in truth["words"] if word["text"] == "Please")  # the known box
    x, y, w, h = (round(please[k]) for k in ("x", "y", "w", "h"))
    inside = np.any(drawn[y : y + h, x : x + w] != original[y : y + h, x : x + w], axis=2)
    assert inside.mean() > 0.9, "the line holding 'Please' is not tinted where the word is"

    index, line = next((i, ln) for i, ln in enumerate(result["lines"]) if "Please" in ln["text"])
    box = line["box"]
    edge_y = round(box["y"] + box["height"] / 2)
    edge_x = round(box["x"])
    assert any(tuple(drawn[edge_y, edge_x + dx]) == PALETTE[index % len(PALETTE)] for dx in (-1, 0, 1))


def test_stream_prints_each_frames_changes(rapidocr: RunningService, tmp_path: Path) -> None:
    from tests.streams.conftest import WORDS, page

    frames = [page(WORDS[:6]), page(WORDS[:6]), page([*WORDS[:2], "Printer offline since Monday", *WORDS[3:6]])]
    paths = []
    for index, frame in enumerate(frames):
        paths.append(tmp_path / f"f{index}.png")
        Image.fromarray(frame).save(paths[-1])
    text = _ocr(rapidocr, "--stream", "cli", *map(str, paths))
    assert text.returncode == 0, text.stderr
    blocks = text.stdout.split("==> ")[1:]
    assert len(blocks) == 3
    assert blocks[0].startswith(f"{paths[0]}: frame 0, read whole (first), 6 lines")
    first_rows = blocks[0].splitlines()[1:]
    assert len(first_rows) == 6 and all(row.startswith("+ [") for row in first_rows)
    assert blocks[1].splitlines()[1:] == []  # unchanged: nothing to print
    assert "0 added, 0 removed, 6 reused" in blocks[1]
    changed = blocks[2].splitlines()
    assert "1 added, 1 removed, 5 reused" in changed[0]
    assert changed[1].startswith("- [") and changed[1].endswith(WORDS[2])
    assert changed[2].startswith("+ [") and changed[2].endswith("Printer offline since Monday")
    as_json = _ocr(rapidocr, "--stream", "cli-json", "--json", *map(str, paths))
    assert as_json.returncode == 0, as_json.stderr
    objects = [json.loads(row) for row in as_json.stdout.splitlines()]
    assert [obj["keyframe"] for obj in objects] == [True, False, False]
    assert [obj["frame"] for obj in objects] == [0, 1, 2]
    assert [line["text"] for line in objects[2]["added"]] == ["Printer offline since Monday"]
    assert objects[2]["reused_lines"] == 5 and objects[2]["lines"] == 6
    refused = _ocr(rapidocr, "--stream", "cli", "--format", "tsv", str(paths[0]))
    assert refused.returncode == 2 and "--stream" in refused.stderr
