"""Words, sentences and punctuation as the published web-corpus filters count them.

The Gopher, C4 and FineWeb rules (Rae et al. 2021; Raffel et al. 2020; Penedo et al. 2024)
are defined over *words* and *sentences*. HF's ``datatrove`` tokenizes English with spaCy's
rule-based tokenizer; :func:`split_words` reproduces its behaviour on web text with one
compiled regex (contractions ``do|n't``, hyphens and punctuation as their own tokens,
numbers ``3.50``/``1,000``, URLs and e-mail addresses whole), and :func:`count_sentences`
reproduces spaCy's ``sentencizer`` rule (a break after ``.``/``!``/``?`` once a
non-punctuation token follows). The punctuation sets are datatrove's (Apache-2.0).
"""

from __future__ import annotations

import re

#: Characters that end a sentence in any script (datatrove's ``TERMINAL_PUNCTUATION``).
TERMINAL_PUNCTUATION: frozenset[str] = frozenset(
    "!.?։؝؞؟۔܀܁܂߹࠷࠹࠽࠾।॥၊။።፧፨᙮᜵᜶។៕៖៙៚᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᭽᭾᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼⹓⹔。꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？｡𐩖𐩗𐽕𐽖𐽗𐽘𐽙𐾆𐾇𐾈𐾉𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑥄𑥆𑩂𑩃𑪛𑪜𑱁𑱂𑻷𑻸\U00011f43\U00011f44𖩮𖩯𖫵𖬷𖬸𖭄𖺘𛲟𝪈"
)
#: Characters a "symbol word" consists of only (datatrove's ``PUNCTUATION_SET``).
PUNCTUATION_SET: frozenset[str] = (
    frozenset(
        "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\x7f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f«´»–—’“”„…∶━►、。〈〉《》「」【】！％（），．１：；？～"
    )
    | TERMINAL_PUNCTUATION
)

_ABBREVIATIONS = (
    r"(?:[A-Za-z]\.){2,}(?![A-Za-z])|(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|Inc|Ltd|Co|Mt)\."
)
_WORD_RE = re.compile(
    r"https?://[^\s]*[^\s.,;:!?)\]\"'»”’]"  # URLs (trailing punctuation split off)
    r"|[\w.+-]+@\w+(?:\.\w+)+"  # e-mail addresses
    rf"|{_ABBREVIATIONS}"  # e.g. U.S. Dr.
    r"|\+?\d+(?:[.,:/]\d+)+|\+\d+"  # 3.50 1,000 12:30 +1
    r"|\w+(?:(?:\.(?=[a-z0-9_])|\()\w+)+"  # console.log(x example.com: no infix split
    r"|\w+(?=n['’]t\b)|n['’]t\b"  # do|n't ca|n't
    r"|['’](?:s|re|ve|ll|d|m|S|RE|VE|LL|D|M)\b"  # it|'s I|'m
    r"|\w+(?:，\w+)*"  # a fullwidth comma inside a CJK run is no split for spaCy
    r"|\.{2,}"  # ... as one token
    r"|[^\w\s]"  # any other symbol: one token each
)
_SPLIT_PUNCT = frozenset(".!?") | TERMINAL_PUNCTUATION


def split_words(text: str) -> list[str]:
    """Word tokens of ``text`` (punctuation marks are tokens of their own)."""
    return _WORD_RE.findall(text)


def is_punctuation(token: str) -> bool:
    """Whether ``token`` consists of punctuation only (spaCy's ``is_punct`` for a token)."""
    return all(ch in PUNCTUATION_SET for ch in token)


def count_sentences(words: list[str], stop_at: int | None = None) -> int:
    """Sentences in a run of ``words``: a new one starts at the first non-punctuation token
    after a sentence-final mark. Counting stops early at ``stop_at`` (the caller only needs
    to know that a document has at least that many)."""
    if not words:
        return 0
    count, seen_final = 1, False
    for token in words:
        if token in _SPLIT_PUNCT:
            seen_final = True
        elif seen_final and not is_punctuation(token):
            count += 1
            seen_final = False
            if stop_at is not None and count >= stop_at:
                return count
    return count
