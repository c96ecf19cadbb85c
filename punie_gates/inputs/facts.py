"""What an answer states: the `answer_facts` syntax of data/queries.toml and the numbers in a text.

A fact is one string; `|` separates alternatives, any one of which states it
("immutable|cannot be changed"). Matching is case-insensitive and by whole
tokens, so a fact is not found inside a longer word or name:
- a number ("3", "2.31") is stated by any number token of that value, or by its
  English word (zero to twenty: "3" is stated by "three"); "3" is not stated by
  "30", "3.5", "v3" or "test_3.py";
- a plain lowercase word or phrase ("generator", "cannot be changed") may take an
  inflection (s, es, d, ed, ing, ly): "generator" is stated by "generators";
- anything else (names, paths, codes: "views.py", "LineItem", "F401") must appear
  as written, not inside a longer name: "routes.py" is not in "test_routes.py".
A space in a fact matches any run of whitespace.

Numbers in a text are read the same way for the follow-up check (punie_gates.checks.
followup): a number token is digits with an optional fraction and an optional unit
(s, ms, %, x, st, nd, rd, th: "2.31s", "3rd"); a version ("1.4.0"), a hash
("3f9c2a1"), a file name ("test_3.py") and an identifier ("F401", "py3") hold none,
and a leading ordered-list marker ("1. ", "2) ") is not a claim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
# "one" is everywhere in prose ("one of the tests", "this one"): it states the fact
# "1", but it is not read as a claim about a count.
_CLAIM_WORDS = {w: v for w, v in NUMBER_WORDS.items() if w != "one"}
_UNITS = frozenset({"s", "ms", "sec", "secs", "x", "st", "nd", "rd", "th"})
_INFLECTION = r"(?:s|es|d|ed|ing|ly)?"
_NUMBER_FACT = re.compile(r"\d+(?:\.\d+)?")
_PLAIN = re.compile(r"[a-z]+(?:[ -][a-z]+)*")
# A number token: not glued to a word, a dot or a digit before it; digits with dotted
# parts; then an optional run of word characters (a unit, or a sign it is a name).
_NUMBER_TOKEN = re.compile(r"(?<![\w.])(\d+(?:\.\d+)*)([A-Za-z_]\w*)?(?!\w)(?!\.\w)")
_LIST_MARKER = re.compile(r"^([ \t]*)\d+[.)](?=\s)", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z]+")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class NumberClaim:
    """A number an answer states."""

    text: str  # as written, e.g. "3", "2.31s", "three"
    value: float
    decimals: int  # digits after the point as written ("2.3" -> 1), for rounding


def alternatives(fact: str) -> tuple[str, ...]:
    """The alternatives of a fact, stripped; an empty one is kept as "" for the validator."""
    return tuple(part.strip() for part in fact.split("|"))


def is_number(term: str) -> bool:
    return bool(_NUMBER_FACT.fullmatch(term))


def _pattern(term: str) -> re.Pattern:
    body = r"\s+".join(re.escape(word) for word in term.split())
    left = r"(?<!\w)" if re.match(r"\w", term) else ""
    if _PLAIN.fullmatch(term):
        right = _INFLECTION + r"(?!\w)"
    else:
        right = r"(?!\w)" if re.search(r"\w$", term) else ""
    return re.compile(left + body + right, re.IGNORECASE)


def states_term(text: str, term: str) -> bool:
    """Whether `text` states one alternative (see the module docstring for the rules)."""
    if is_number(term):
        value = float(term)
        return any(claim.value == value for claim in number_claims(text, words=NUMBER_WORDS))
    return bool(_pattern(term).search(text))


def states(text: str, fact: str) -> bool:
    """Whether `text` states the fact: any of its alternatives."""
    return any(states_term(text, term) for term in alternatives(fact) if term)


def missing_facts(text: str, facts: Iterable[str]) -> tuple[str, ...]:
    """The facts `text` does not state, in the order given."""
    return tuple(fact for fact in facts if not states(text, fact))


def number_claims(text: str, words: dict[str, int] | None = None) -> tuple[NumberClaim, ...]:
    """The numbers `text` states, in order: number tokens, then number words.

    `words` defaults to the claim words (zero, two ... twenty: not "one")."""
    words = _CLAIM_WORDS if words is None else words
    text = _LIST_MARKER.sub(r"\1", text)
    claims: list[NumberClaim] = []
    for match in _NUMBER_TOKEN.finditer(text):
        digits, suffix = match.group(1), match.group(2)
        if digits.count(".") > 1:
            continue  # a version such as 1.4.0
        if suffix and suffix.lower() not in _UNITS:
            continue  # a hash or a name that starts with digits
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        claims.append(NumberClaim(match.group(0), float(digits), decimals))
    for match in _WORD.finditer(text):
        value = words.get(match.group(0).lower())
        if value is not None:
            claims.append(NumberClaim(match.group(0), float(value), 0))
    return tuple(claims)


def numbers_mentioned(text: str) -> frozenset[float]:
    """Every number a source text holds, read generously: each digit run (also inside
    names, dates and versions) and each number word including "one"."""
    values = {float(m) for m in _DIGITS.findall(text)}
    values |= {float(d) for m in _DIGITS.findall(text) for d in m.split(".")}
    values |= {float(NUMBER_WORDS[w.lower()]) for w in _WORD.findall(text) if w.lower() in NUMBER_WORDS}
    return frozenset(values)


def supported(claim: NumberClaim, allowed: Sequence[float] | frozenset[float]) -> bool:
    """Whether a claim is one of the allowed values, or one of them rounded as written
    ("2.3" for 2.31, "2" for 2.31): answers round durations."""
    for value in allowed:
        if value == claim.value:
            return True
        if value != int(value) and round(value, claim.decimals) == claim.value:
            return True
    return False
