"""The official scorers' text preprocessing, each function named after the script it mirrors.

Suites apply these before scoring, so a harness that generates raw text is scored exactly as the
official scripts score their files.
"""

from __future__ import annotations

import re

from unidecode import unidecode

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PERL_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")
_NON_WORD = re.compile(r"(\W)")
# DART's tokenizer, measured on its files: the WebNLG split, except that combining marks stay in
# their word (its references hold "i̇zmir", lowercased from "İzmir" after splitting).
_DART_NON_WORD = re.compile(r"([^\w\u0300-\u036f])")
# e2e-metrics `read_tsv` repairs mis-encoded pound and e-acute signs in reference files.
_E2E_REPAIRS = (("Ł", "£"), ("Â£", "£"), ("Ã©", "é"), ("ã©", "é"))


def ascii_lower(text: str) -> str:
    """Lowercase ASCII letters only, as Perl's `lc` / `tr/A-Z/a-z/` do on undecoded bytes."""
    return text.translate(_ASCII_LOWER)


def perl_words(text: str) -> list[str]:
    """Perl's `split` on whitespace (ASCII whitespace only: the scripts read bytes)."""
    return [word for word in _PERL_WHITESPACE.split(text) if word]


def split_non_word(text: str) -> str:
    """`' '.join(re.split('(\\W)', s))` then single spaces: the WebNLG/DART tokenization."""
    return " ".join(" ".join(_NON_WORD.split(text)).split())


def e2e_output(text: str) -> str:
    """e2e-metrics reads one output per line, stripped."""
    return text.strip()


def e2e_reference(text: str) -> str:
    """e2e-metrics' reference cleanup: its encoding repairs only. Quotes around a reference stay,
    as in the official run: stripping them shifts NIST's information weights (by 9e-7 on TGen)."""
    for wrong, right in _E2E_REPAIRS:
        text = text.replace(wrong, right)
    return text


def webnlg_hypothesis(text: str) -> str:
    """WebNLG 2017 `evaluation.py` on outputs: strip, ASCII-fy, lowercase, split non-words."""
    return split_non_word(unidecode(unidecode(text.strip()).lower()))


def webnlg_reference(text: str) -> str:
    """WebNLG 2017 `evaluation.py` on references: split non-words, then lowercase and ASCII-fy
    (in this order, unlike outputs, as the script does)."""
    return unidecode(split_non_word(text).lower())


def dart_text(text: str) -> str:
    """The form of the official DART reference files: non-words split off, then lowercased.

    It maps every raw DART test reference (the XML's first three per input) to its line in
    `dart_reference/*.lex`, and leaves those lines and normalized outputs unchanged, so the
    DART scripts (which expect outputs in that form) score raw text as they score theirs.
    """
    return " ".join(" ".join(_DART_NON_WORD.split(text.strip())).split()).lower()
