"""What ``shmbridge ocr`` writes: text, JSON lines, Tesseract TSV, hOCR and ALTO, from ``OcrResult``s.

Owns the five formats, one ``Writer`` each, with one shape: ``begin()``, then ``page(number, name, result)``
per input, then ``end()``, each returning text to write. So one input makes one document, and many inputs
make one document with many pages (TSV ``page_num``, hOCR ``ocr_page``, ALTO ``Page``) or one file each.

The engines give lines, not words: TSV and hOCR split each line into words at spaces and divide the line's
box among them by their share of its characters (so word boxes are estimates; line boxes are the engine's).
Each line is its own block and paragraph, since no layout analysis runs. It must never do I/O or OCR.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .models import Box, OcrResult, TextLine

TSV_COLUMNS = ("level", "page_num", "block_num", "par_num", "line_num", "word_num",
               "left", "top", "width", "height", "conf", "text")  # fmt: skip
ALTO_NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    left: int
    top: int
    width: int
    height: int


def words_of(line: TextLine) -> Iterator[Word]:
    """The line's words, each with its share of the line's box by character count."""
    box = line.box
    text = line.text
    total = max(1, len(text))
    position = 0
    for word in text.split():
        start = text.index(word, position)
        position = start + len(word)
        left = box.x + box.width * start / total
        right = box.x + box.width * position / total
        yield Word(word, round(left), round(box.y), max(1, round(right - left)), round(box.height))


def _edges(box: Box) -> tuple[int, int, int, int]:
    return round(box.x), round(box.y), round(box.x + box.width), round(box.y + box.height)


class Writer:
    """One output format. Subclasses override what they write; everything returns text."""

    extension = ".txt"

    def __init__(self, *, many: bool = False, software: str = "shmbridge") -> None:
        self.many = many  # more than one input into this document
        self.software = software

    def begin(self) -> str:
        return ""

    def page(self, number: int, name: str, result: OcrResult) -> str:
        raise NotImplementedError

    def end(self) -> str:
        return ""


class TextWriter(Writer):
    extension = ".txt"

    def page(self, number: int, name: str, result: OcrResult) -> str:
        header = f"==> {name} <==\n" if self.many else ""
        return f"{header}{result.text}\n"


class JsonWriter(Writer):
    """One JSON object per line (per input): the result's fields, plus ``file``."""

    extension = ".json"

    def page(self, number: int, name: str, result: OcrResult) -> str:
        fields: dict[str, Any] = {"file": name, **result.model_dump(mode="json")}
        fields["processing_time_ms"] = result.processing_time_ms
        return json.dumps(fields, ensure_ascii=False) + "\n"


class TsvWriter(Writer):
    """Tesseract's TSV (``tesseract x.png out tsv``): its 12 columns, levels 1 page … 5 word, conf 0-100."""

    extension = ".tsv"

    def begin(self) -> str:
        return "\t".join(TSV_COLUMNS) + "\n"

    def page(self, number: int, name: str, result: OcrResult) -> str:
        rows = [(1, number, 0, 0, 0, 0, 0, 0, result.width, result.height, "-1", "")]
        for block, line in enumerate(result.lines, start=1):
            box = (round(line.box.x), round(line.box.y), round(line.box.width), round(line.box.height))
            rows.append((2, number, block, 0, 0, 0, *box, "-1", ""))
            rows.append((3, number, block, 1, 0, 0, *box, "-1", ""))
            rows.append((4, number, block, 1, 1, 0, *box, "-1", ""))
            for index, word in enumerate(words_of(line), start=1):
                conf = f"{line.confidence * 100:.6f}"
                text = word.text.replace("\t", " ")
                rows.append((5, number, block, 1, 1, index, word.left, word.top, word.width, word.height, conf, text))
        return "".join("\t".join(str(cell) for cell in row) + "\n" for row in rows)


class HocrWriter(Writer):
    """hOCR 1.2 as well-formed XHTML, with Tesseract's classes and ids (``ocr_page`` … ``ocrx_word``)."""

    extension = ".hocr"

    def begin(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
            '    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            f'<html xmlns="{XHTML_NAMESPACE}" xml:lang="en" lang="en">\n'
            " <head>\n  <title></title>\n"
            '  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
            f'  <meta name="ocr-system" content={quoteattr(self.software)}/>\n'
            '  <meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"/>\n'
            " </head>\n <body>\n"
        )

    def page(self, number: int, name: str, result: OcrResult) -> str:
        title = f'image "{name}"; bbox 0 0 {result.width} {result.height}; ppageno {number - 1}'
        out = [f'  <div class="ocr_page" id="page_{number}" title={quoteattr(title)}>\n']
        for block, line in enumerate(result.lines, start=1):
            bbox = "bbox {} {} {} {}".format(*_edges(line.box))
            tag = f"{number}_{block}"
            out.append(f'   <div class="ocr_carea" id="block_{tag}" title="{bbox}">\n')
            out.append(f'    <p class="ocr_par" id="par_{tag}" title="{bbox}">\n')
            line_title = f"{bbox}; baseline 0 0; x_size {round(line.box.height)}; x_descenders 0; x_ascenders 0"
            out.append(f'     <span class="ocr_line" id="line_{tag}" title="{line_title}">\n')
            for index, word in enumerate(words_of(line), start=1):
                edges = f"bbox {word.left} {word.top} {word.left + word.width} {word.top + word.height}"
                conf = round(line.confidence * 100)
                out.append(f'      <span class="ocrx_word" id="word_{tag}_{index}" title="{edges}; x_wconf {conf}">'
                           f"{escape(word.text)}</span>\n")  # fmt: skip
            out.append("     </span>\n    </p>\n   </div>\n")
        out.append("  </div>\n")
        return "".join(out)

    def end(self) -> str:
        return " </body>\n</html>\n"


class AltoWriter(Writer):
    """ALTO v4 XML: ``Page`` / ``PrintSpace`` / ``TextBlock`` / ``TextLine`` / ``String`` in pixels."""

    extension = ".xml"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._described = False

    def begin(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<alto xmlns="{ALTO_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
            f' xsi:schemaLocation="{ALTO_NAMESPACE} http://www.loc.gov/alto/v4/alto-4-2.xsd">\n'
        )

    def _description(self, name: str) -> str:
        return (
            "  <Description>\n    <MeasurementUnit>pixel</MeasurementUnit>\n"
            f"    <sourceImageInformation><fileName>{escape(name)}</fileName></sourceImageInformation>\n"
            '    <OCRProcessing ID="OCR_0"><ocrProcessingStep><processingSoftware>'
            f"<softwareName>{escape(self.software)}</softwareName>"
            "</processingSoftware></ocrProcessingStep></OCRProcessing>\n  </Description>\n  <Layout>\n"
        )

    def page(self, number: int, name: str, result: OcrResult) -> str:
        out = [] if self._described else [self._description(name)]
        self._described = True
        size = f'WIDTH="{result.width}" HEIGHT="{result.height}"'
        out.append(f'    <Page ID="page_{number}" PHYSICAL_IMG_NR="{number}" {size}>\n')
        out.append(f'      <PrintSpace HPOS="0" VPOS="0" {size}>\n')
        for block, line in enumerate(result.lines, start=1):
            tag = f"{number}_{block}"
            where = _alto_box(line.box)
            out.append(f'        <TextBlock ID="block_{tag}" {where}>\n')
            out.append(f'          <TextLine ID="line_{tag}" {where}>\n')
            words = list(words_of(line))
            for index, word in enumerate(words, start=1):
                box = f'HPOS="{word.left}" VPOS="{word.top}" WIDTH="{word.width}" HEIGHT="{word.height}"'
                out.append(f'            <String ID="string_{tag}_{index}" {box} CONTENT={quoteattr(word.text)}'
                           f' WC="{line.confidence:.4f}"/>\n')  # fmt: skip
                if index < len(words):
                    out.append("            <SP/>\n")
            out.append("          </TextLine>\n        </TextBlock>\n")
        out.append("      </PrintSpace>\n    </Page>\n")
        return "".join(out)

    def end(self) -> str:
        layout = "" if self._described else "  <Layout>\n"
        return f"{layout}  </Layout>\n</alto>\n"


def _alto_box(box: Box) -> str:
    return (f'HPOS="{round(box.x)}" VPOS="{round(box.y)}" WIDTH="{round(box.width)}" '
            f'HEIGHT="{round(box.height)}"')  # fmt: skip


FORMATS: dict[str, type[Writer]] = {
    "text": TextWriter,
    "json": JsonWriter,
    "tsv": TsvWriter,
    "hocr": HocrWriter,
    "alto": AltoWriter,
}


# -- changes between frames (``shmbridge ocr --stream``, ``shmbridge watch``) ---------------------------------


def change_line(sign: str, line: TextLine) -> str:
    """One line that appeared (``+``) or went (``-``), with its box: ``+ [x,y wxh] text``."""
    box = line.box
    return f"{sign} [{box.x:.0f},{box.y:.0f} {box.width:.0f}x{box.height:.0f}] {line.text}"


def changes_text(added: Sequence[TextLine], removed: Sequence[TextLine]) -> str:
    """The removed lines, then the added ones, one per line (empty when nothing changed)."""
    rows = [change_line("-", line) for line in removed] + [change_line("+", line) for line in added]
    return "".join(row + "\n" for row in rows)


def line_json(line: TextLine) -> dict[str, Any]:
    return {"text": line.text, "confidence": line.confidence, "box": line.box.model_dump()}


def stream_frame_text(name: str, result: OcrResult) -> str:
    """A stream frame for people: a header saying what the stream did, then the lines that came and went."""
    info = result.stream
    if info is None:  # a service without streams would have refused the request; kept total anyway
        return f"==> {name} <==\n" + changes_text(result.lines, [])
    if info.keyframe:
        what = f"read whole ({info.reason}), {len(result.lines)} lines"
    else:
        what = (f"{info.new_lines} added, {info.removed_lines} removed, {info.reused_lines} reused, "
                f"{len(info.rects)} rectangle(s) read")  # fmt: skip
    header = f"==> {name}: frame {info.frame}, {what}, {result.timings.total_ms:.0f} ms <==\n"
    return header + changes_text(info.added or [], info.removed or [])


def stream_frame_json(name: str, result: OcrResult) -> str:
    """A stream frame as one JSON object: what the stream did, the lines that came and went, the text."""
    info = result.stream
    body: dict[str, Any] = {"input": name, "text": result.text, "lines": len(result.lines)}
    if info is not None:
        fields = info.model_dump(mode="json", exclude={"added", "removed"})
        body.update(fields, added=[line_json(line) for line in info.added or []],
                    removed=[line_json(line) for line in info.removed or []])  # fmt: skip
    body["timings"] = result.timings.model_dump()
    body["warnings"] = list(result.warnings)
    return json.dumps(body, ensure_ascii=False) + "\n"
