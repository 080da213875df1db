"""What the README tells a user about defaults and the two sweep paths is what holds: one default encoder,
named once and equal to the engine's (which the Indexes page offers first), and the fast and reference paths
said to agree on ids, order and metrics exactly and on vector scores to about 1e-6, not on "the same scores"."""

from __future__ import annotations

import re
from pathlib import Path

from eval.settings import DEFAULT_EMBEDDING

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
ENCODER = re.compile(r"`((?:onnx(?:-int8)?:)?(?:e5-small|minilm))`")


def test_the_readme_names_one_default_encoder_once_and_it_is_the_engines():
    text = " ".join(README.split())
    near = r"[^`.|]{0,25}"  # a default named beside an encoder, within a clause
    named = re.findall(rf"\bdefault\b{near}`([^`]+)`", text) + re.findall(rf"`([^`]+)`{near}\bdefault\b", text)
    encoders = [name for name in named if ENCODER.fullmatch(f"`{name}`")]
    assert encoders == [DEFAULT_EMBEDDING], encoders
    assert "first choice" not in text
    assert f"The default encoder is `{DEFAULT_EMBEDDING}`" in text


def test_the_readme_says_what_the_fast_and_reference_paths_share():
    text = " ".join(README.split())
    assert "same chunks, order and scores" not in text
    assert (
        "the same chunk ids in the same order and the same metrics, exactly, while vector relevance scores "
        "agree to about 1e-6"
    ) in text
