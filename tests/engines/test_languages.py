"""``shmbridge.languages``: BCP-47 tags and Tesseract codes, mapped for each engine and back."""

from __future__ import annotations

import pytest

from shmbridge import languages


@pytest.mark.parametrize(
    ("written", "tag", "tesseract", "rapidocr"),
    [
        ("eng", "en", "eng", "en"),
        ("en-US", "en-US", "eng", "en"),
        ("en_gb", "en-GB", "eng", "en"),
        ("deu", "de", "deu", "de"),
        ("de-AT", "de-AT", "deu", "de"),
        ("chi_sim", "zh-Hans", "chi_sim", "ch"),
        ("chi_tra", "zh-Hant", "chi_tra", "chinese_cht"),
        ("zh-TW", "zh-TW", "chi_tra", "chinese_cht"),
        ("zh-hant-hk", "zh-Hant-HK", "chi_tra", "chinese_cht"),
        ("zh", "zh", "chi_sim", "ch"),
        ("jpn", "ja", "jpn", "japan"),
        ("srp_latn", "sr-Latn", "srp_latn", "rs_latin"),
        ("nb", "nb", "nor", "nb"),
        ("tlh", "tlh", None, "tlh"),  # a real language no engine here reads
    ],
)
def test_written_forms_map_for_each_engine(written: str, tag: str, tesseract: str | None, rapidocr: str) -> None:
    assert languages.bcp47(written) == tag
    assert languages.tesseract_code(written) == tesseract
    assert languages.rapidocr_code(written) == rapidocr


@pytest.mark.parametrize("written", ["english", "en--US", "123", "x", "", "en-US-"])
def test_unknown_tags_are_named(written: str) -> None:
    assert languages.parse(written) is None
    warning = languages.unknown_tags_warning(["eng", written])
    assert warning is not None and repr(written) in warning and "'eng'" not in warning


def test_engine_names_come_back_as_bcp47() -> None:
    assert languages.from_tesseract("chi_sim") == "zh-Hans" and languages.from_tesseract("osd") is None
    names = ["ch", "chinese_cht", "japan", "german", "french", "en", "latin", "rs_latin"]
    assert languages.bcp47_list(languages.from_rapidocr(name) for name in names) == [
        "de", "en", "fr", "ja", "sr-Latn", "zh-Hans", "zh-Hant",
    ]  # fmt: skip
    assert languages.unknown_tags_warning(["en-US", "deu", "chi_sim"]) is None
