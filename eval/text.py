"""Telling Chinese from English: the share of CJK characters among a text's letters."""

from __future__ import annotations

import re

CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"


CJK_CHAR = re.compile(f"[{CJK_RANGES}]")


# A text is Chinese when at least this share of its letters (CJK characters + Latin letters) is CJK.
# A Latin word has several letters, so a Chinese sentence with English terms still counts as Chinese.
ZH_MIN_CJK_SHARE = 0.25


def cjk_share(text: str) -> float:
    """The share of CJK characters among the letters (CJK characters + Latin letters) of `text`."""
    cjk = len(CJK_CHAR.findall(text))
    latin = len(LATIN_LETTER.findall(text))
    return cjk / (cjk + latin) if cjk else 0.0


def detect_language(text: str) -> str:
    """ "zh" when CJK characters make up a fair share of the letters in `text`, else "en"."""
    return "zh" if cjk_share(text) >= ZH_MIN_CJK_SHARE else "en"


LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")
