"""Language names as users write them, and as each engine wants them.

Users write BCP-47 tags (``en``, ``en-US``, ``en_GB``, ``zh-Hans``, ``zh-TW``, ``sr-Latn``) or Tesseract's
codes (``eng``, ``deu``, ``chi_sim``, ``srp_latn``). ``parse`` turns either into one ``Language`` with a
canonical BCP-47 tag; each engine maps that to its own names (``tesseract_code``, ``rapidocr_code``) and
reports what it supports back as BCP-47 (``from_tesseract``, ``from_rapidocr``), so a request, a warning
and ``/api/v1/bridge/info`` all speak the same tags.

It must never do I/O or drop a tag silently: a tag it cannot place is ``None``, and callers name it in a
warning (``unknown_tags_warning``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Tesseract's traineddata names and the BCP-47 tag each reads (ISO 639-2/T codes, plus scripts).
TESSERACT_CODES = {
    "afr": "af", "ara": "ar", "aze": "az", "bel": "be", "ben": "bn", "bos": "bs", "bul": "bg", "cat": "ca",
    "ces": "cs", "chi_sim": "zh-Hans", "chi_tra": "zh-Hant", "cym": "cy", "dan": "da", "deu": "de", "ell": "el",
    "eng": "en", "est": "et", "eus": "eu", "fas": "fa", "fil": "fil", "fin": "fi", "fra": "fr", "gle": "ga",
    "glg": "gl", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "ind": "id", "isl": "is", "ita": "it",
    "jpn": "ja", "kat": "ka", "kor": "ko", "kur": "ku", "lat": "la", "lav": "lv", "lit": "lt", "ltz": "lb",
    "mlt": "mt", "mri": "mi", "msa": "ms", "nld": "nl", "nor": "no", "oci": "oc", "pol": "pl", "por": "pt",
    "que": "qu", "ron": "ro", "rus": "ru", "slk": "sk", "slv": "sl", "spa": "es", "sqi": "sq", "srp": "sr",
    "srp_latn": "sr-Latn", "swa": "sw", "swe": "sv", "tam": "ta", "tel": "te", "tgl": "tl", "tha": "th",
    "tur": "tr", "ukr": "uk", "uzb": "uz", "vie": "vi",
}  # fmt: skip
#: RapidOCR's names that are not the BCP-47 primary subtag (the rest, ``en``, ``de``, ``fr``, are).
_RAPIDOCR_NAMES = {
    "zh-Hans": "ch", "zh-Hant": "chinese_cht", "ja": "japan", "ko": "korean", "ar": "arabic",
    "sr-Latn": "rs_latin", "sr": "rs_cyrillic",
}  # fmt: skip
#: RapidOCR's names for what a model reads, back to BCP-47. Script families (``latin``, ``cyrillic``) are
#: no language and are not listed.
_FROM_RAPIDOCR = {
    **{name: tag for tag, name in _RAPIDOCR_NAMES.items()},
    "french": "fr", "german": "de", "chinese": "zh-Hans", "japanese": "ja",
}  # fmt: skip
_SCRIPT_FAMILIES = frozenset({"latin", "cyrillic", "devanagari", "eslav", "ch_doc"})
#: Regions that write Chinese in traditional characters when no script is given.
_TRADITIONAL = frozenset({"TW", "HK", "MO"})
#: language[-Script][-REGION][-variant...]; 5-8 letter primary subtags are reserved and unassigned.
_BCP47 = re.compile(
    r"(?P<language>[a-z]{2,3})(?:-(?P<script>[a-z]{4}))?(?:-(?P<region>[a-z]{2}|\d{3}))?(?:-[a-z0-9]{5,8}|-\d[a-z0-9]{3})*",
    re.IGNORECASE,
)
HOW_TO_WRITE = "write a BCP-47 tag (en-US, de, zh-Hans) or a Tesseract code (eng, deu, chi_sim)"


@dataclass(frozen=True, slots=True)
class Language:
    """One language as BCP-47 parts; ``tag`` is the canonical spelling (``zh-Hant-TW``, ``en``)."""

    language: str
    script: str | None = None
    region: str | None = None

    @property
    def tag(self) -> str:
        return "-".join(part for part in (self.language, self.script, self.region) if part)

    @property
    def key(self) -> str:
        """What engines tell apart: the language, and the script where engines read it apart
        (``zh-Hans``/``zh-Hant``, from the region when no script is given; ``sr-Latn``)."""
        if self.language == "zh":
            return "zh-" + (self.script or ("Hant" if self.region in _TRADITIONAL else "Hans"))
        if self.language == "sr" and self.script == "Latn":
            return "sr-Latn"
        return self.language


def parse(tag: str) -> Language | None:
    """A BCP-47 tag or a Tesseract code as a ``Language``; ``None`` when it is neither."""
    text = tag.strip()
    code = text.lower()
    if code in TESSERACT_CODES:
        text = TESSERACT_CODES[code]
    match = _BCP47.fullmatch(text.replace("_", "-"))
    if match is None:
        return None
    language = match["language"].lower()
    language = TESSERACT_CODES.get(language, language).split("-")[0]  # "deu-AT" -> "de-AT"
    script = match["script"].title() if match["script"] else None
    if script is None and "-" in TESSERACT_CODES.get(code, ""):
        script = TESSERACT_CODES[code].split("-")[1]
    region = match["region"].upper() if match["region"] else None
    return Language(language, script, region)


def bcp47(tag: str) -> str | None:
    """The canonical BCP-47 spelling of ``tag`` (``eng`` -> ``en``, ``en_us`` -> ``en-US``), else ``None``."""
    parsed = parse(tag)
    return parsed.tag if parsed else None


def unknown_tags(tags: Iterable[str]) -> list[str]:
    """The tags ``parse`` cannot place, as given."""
    return [tag for tag in tags if parse(tag) is None]


def unknown_tags_warning(tags: Iterable[str]) -> str | None:
    """``"unknown language tag(s) 'x', 'y': write ..."``, or ``None`` when every tag is known."""
    unknown = unknown_tags(tags)
    if not unknown:
        return None
    return f"unknown language tag(s) {', '.join(repr(tag) for tag in unknown)}: {HOW_TO_WRITE}; ignored"


# -- per engine --------------------------------------------------------------------------------------


def _tesseract_by_key() -> dict[str, str]:
    out: dict[str, str] = {}
    for code, tag in TESSERACT_CODES.items():
        parsed = parse(tag)
        if parsed is not None:
            out.setdefault(parsed.key, code)
    out.setdefault("nb", "nor")  # Norwegian Bokmål reads with the Norwegian data
    return out


def tesseract_code(tag: str) -> str | None:
    """``en-US`` -> ``eng``, ``zh-TW`` -> ``chi_tra``, ``deu`` -> ``deu``; ``None`` when Tesseract has no name."""
    parsed = parse(tag)
    return None if parsed is None else _TESSERACT_KEYS.get(parsed.key)


def from_tesseract(code: str) -> str | None:
    """A traineddata name as BCP-47 (``chi_sim`` -> ``zh-Hans``); ``None`` for others (``osd``, ``equ``)."""
    return TESSERACT_CODES.get(code.lower())


def rapidocr_code(tag: str) -> str | None:
    """``en-US`` -> ``en``, ``zh-Hant`` -> ``chinese_cht``, ``eng`` -> ``en``; ``None`` for an unknown tag."""
    parsed = parse(tag)
    if parsed is None:
        return None
    return _RAPIDOCR_NAMES.get(parsed.key, parsed.language)


def from_rapidocr(code: str) -> str | None:
    """RapidOCR's name for what a model reads as BCP-47 (``japan`` -> ``ja``); ``None`` for script families."""
    if code in _SCRIPT_FAMILIES:
        return None
    tag = _FROM_RAPIDOCR.get(code, code)
    return bcp47(tag)


def bcp47_list(tags: Iterable[str | None]) -> list[str]:
    """Sorted, without duplicates or ``None``: what an engine's info lists."""
    return sorted({tag for tag in tags if tag})


_TESSERACT_KEYS = _tesseract_by_key()
