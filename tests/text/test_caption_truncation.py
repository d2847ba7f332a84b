"""Over-long captions (issue 15 item 4a): CLIP's context is 77 tokens, start and end tokens included. A caption
of more is embedded as open_clip's tokenizer truncates it — the start token, its first 75 tokens, the end token —
so its embedding equals that of the caption cut to its first 75 tokens, and it is flagged ``truncated``.
Boundary cases 76 / 77 / 78 tokens; random-weights CLIP (the text tower is the real architecture)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import RANDOM_BACKBONES
from tise_bench.backbones import build_backbones
from tise_bench.features.bank import FeatureBank

CONTEXT = 77  # CLIP's text context, start and end tokens included
WORDS = (
    "red blue green yellow black white orange purple pink brown dog cat horse cow sheep bird fish car bus "
    "train boat plane tree house road river hill sky sun moon star cup bowl plate chair table bed door"
).split()


@pytest.fixture(scope="module")
def clip(session_cache):
    return build_backbones(RANDOM_BACKBONES, {"clip"}, session_cache)["clip"]


def _caption(n_words: int, last: str | None = None) -> str:
    words = [WORDS[i % len(WORDS)] for i in range(n_words)]
    if last is not None:
        words[-1] = last
    return " ".join(words)


def test_each_word_is_one_token(clip):
    assert clip.context_length == CONTEXT
    assert [len(clip.tokenizer.encode(w)) for w in WORDS] == [1] * len(WORDS)
    assert clip.n_tokens(_caption(75)) == 77  # words + start + end


def test_76_77_78_token_boundaries(clip):
    c74, c75, c76 = _caption(74), _caption(75), _caption(76, last="zebra")
    assert [clip.n_tokens(c) for c in (c74, c75, c76)] == [76, 77, 78]
    emb, truncated = clip.encode_text([c74, c75, c76])
    assert truncated.tolist() == [False, False, True]  # 77 tokens fit; 78 do not
    # the 78-token caption is the 77-token one: its 76th word is dropped, the end token kept
    tok = clip.tokenizer([c75, c76])
    assert tok.shape == (2, CONTEXT) and bool((tok[0] == tok[1]).all())
    assert int(tok[1, -1]) == clip.tokenizer.eot_token_id
    np.testing.assert_allclose(emb[2], emb[1], rtol=0, atol=1e-6)
    # ... while the 77-token caption is not truncated: its 75th word changes the embedding
    assert np.abs(emb[1] - emb[0]).max() > 1e-3
    other75 = clip.encode_text([_caption(75, last="zebra")])[0][0]
    assert np.abs(other75 - emb[1]).max() > 1e-3


def test_an_over_long_caption_embeds_as_its_first_75_tokens(clip, tmp_path):
    long = _caption(400)  # 402 tokens
    cut = _caption(75)
    emb, truncated = clip.encode_text([long])
    ref, ref_truncated = clip.encode_text([cut])
    assert truncated.tolist() == [True] and ref_truncated.tolist() == [False]
    np.testing.assert_allclose(emb[0], ref[0], rtol=0, atol=1e-6)
    # through the feature bank (what CLIP-S reads): the same embedding, the flag cached with it
    bank = FeatureBank({"clip": clip}, tmp_path / "cache")
    for _ in range(2):  # computed, then read back from the cache
        got, flagged = bank.texts(clip, [long, cut])
        assert flagged == {long}
        np.testing.assert_allclose(got[long], ref[0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got[cut], ref[0], rtol=0, atol=1e-6)
