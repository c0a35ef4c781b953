"""Text clean-up and chunking before synthesis.

Clean-up removes what no engine should see (control and format characters, lone surrogates,
private-use code points) and folds compatibility forms, so hostile input cannot steer an
engine and odd input still speaks. Chunking splits at sentence boundaries so the first audio
comes early and each chunk stays within what the engine handles well.
"""

import re
import unicodedata

# Control (Cc), format (Cf: bidi overrides, zero-width), surrogate (Cs), private-use (Co) and
# unassigned (Cn) code points carry nothing speakable.
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_KEPT_CONTROLS = {"\n", "\t"}
# A run of combining marks longer than this is a "Zalgo" flood, not writing.
_MAX_COMBINING_RUN = 4

# Text is NFKC-normalised first, so fullwidth punctuation has become ASCII. A candidate
# sentence end: terminal punctuation, any closing quotes or brackets, then whitespace or the
# end. A match starts only where a run of punctuation starts and never gives characters back,
# so a wall of periods is scanned once rather than once per period.
_SENTENCE_END = re.compile(
    r"(?<![.!?\u2026\u3002])(?P<punctuation>[.!?\u2026\u3002]++)"
    r"(?P<closers>[\"'\u201d\u2019\u00bb)\]}]*+)(?=\s|$)"
)
_CLAUSE_END = re.compile(r"(?<=[,;:\u2013\u2014])\s+")
_WHITESPACE = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")


# Control characters that separate words or lines: kept as separators, not deleted, so that
# "Hello\rworld" does not become one word.
_SEPARATORS = str.maketrans(
    {
        "\r": "\n",
        "\x85": "\n",
        "\u2028": "\n",
        "\u2029": "\n",
        "\v": " ",
        "\f": " ",
        "\x1c": " ",
        "\x1d": " ",
        "\x1e": " ",
        "\x1f": " ",
    }
)


def normalise_text(text: str) -> str:
    """Clean `text` for speech; an empty result means there is nothing to say."""
    kept: list[str] = []
    combining_run = 0
    for char in text.translate(_SEPARATORS):
        category = unicodedata.category(char)
        if category in _DROPPED_CATEGORIES and char not in _KEPT_CONTROLS:
            continue
        if category.startswith("M"):
            combining_run += 1
            if combining_run > _MAX_COMBINING_RUN:
                continue
        else:
            combining_run = 0
        kept.append(char)
    cleaned = unicodedata.normalize("NFKC", "".join(kept))
    lines = (_WHITESPACE.sub(" ", line).strip() for line in cleaned.split("\n"))
    return "\n".join(line for line in lines if line)


# Abbreviations whose period never ends a sentence: a name or a number always follows them.
_ABBREVIATIONS_BEFORE = frozenset(
    "dr mr mrs ms prof rev st mt capt gen sgt lt col gov sen vs cf e.g i.e approx fig vol".split()
)
# Abbreviations whose period ends a sentence only when a capitalised word follows.
_ABBREVIATIONS_ANYWHERE = frozenset("etc jr sr inc ltd co corp bros a.m p.m ca al".split())
# Abbreviations of "number" and "page": not a sentence end when a number follows.
_ABBREVIATIONS_OF_NUMBERS = frozenset("no nos nr p pp pg".split())
# Initials and dotted acronyms ("J. K. Rowling", "U.S. troops").
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")
_OPENERS = "\"'\u201c\u2018\u00ab([{"


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences, each with its whitespace collapsed to single spaces.

    A line break always ends a sentence. Otherwise a sentence ends at terminal punctuation
    followed by whitespace, unless the period belongs to an abbreviation, an initial or a
    leading list number, or an ellipsis trails off into a lower-case word. Closing quotes and
    brackets stay with the sentence they close. Nothing is dropped or reordered: joining the
    sentences with spaces gives back the text with its whitespace collapsed.
    """
    sentences: list[str] = []
    for raw_line in text.splitlines():
        # With single spaces, the words either side of a candidate end are found by offset.
        line = " ".join(raw_line.split())
        start = 0
        for match in _SENTENCE_END.finditer(line):
            if _is_sentence_end(line, match):
                sentences.append(line[start : match.end()].strip())
                start = match.end()
        sentences.append(line[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _is_sentence_end(line: str, match: re.Match[str]) -> bool:
    """Whether a candidate end (punctuation before a space or the line's end) ends a sentence."""
    # The pattern ends at a space or the end of the line; the next word starts after it.
    following = line[match.end() + 1 : match.end() + 2]
    if not following:
        return True
    punctuation = match.group("punctuation")
    # A quoted sentence inside a longer one: He said "Stop!" and left.
    if match.group("closers"):
        return not following.islower()
    if punctuation != ".":
        # "!" and "?" end a sentence; an ellipsis does unless the sentence trails on.
        return not (set(punctuation) <= {".", "\u2026"} and following.islower())
    word_start = line.rfind(" ", 0, match.start()) + 1
    word = line[word_start : match.start()]
    return not _is_abbreviation(word, following, first_word=word_start == 0)


def _is_abbreviation(word: str, following: str, *, first_word: bool) -> bool:
    """Whether the period after `word`, with `following` the next character, marks an
    abbreviation rather than a sentence end."""
    word = word.lstrip(_OPENERS)
    lowered = word.lower()
    if lowered in _ABBREVIATIONS_BEFORE:
        return True
    if lowered in _ABBREVIATIONS_ANYWHERE:
        return not following.isupper()
    if lowered in _ABBREVIATIONS_OF_NUMBERS:
        return following.isdigit()
    # A number opening a line is a list item's marker ("1. Buy milk"), not a sentence.
    if first_word and word.isdigit():
        return True
    if _INITIALISM.fullmatch(word):
        # A single capital is an initial ("J. Smith"); a dotted acronym ends the sentence only
        # before a capital ("in the U.S. Then", but "U.S. troops").
        return (len(word) == 1 and word.isupper()) or not following.isupper()
    return False


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Split at sentence ends, then pack sentences into chunks of at most `max_chars`.

    Joining the chunks with spaces gives back `text` with its whitespace collapsed, as long as
    no single word is longer than `max_chars` (such a word is cut into pieces).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    pieces: list[str] = []
    for sentence in split_sentences(text):
        pieces.extend(_split_long(sentence, max_chars))
    return _pack(pieces, max_chars)


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than `max_chars`: split at clauses, then words, then hard."""
    if len(sentence) <= max_chars:
        return [sentence]
    parts: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if len(clause) <= max_chars:
            parts.append(clause)
            continue
        words = [
            word[start : start + max_chars]
            for word in clause.split(" ")
            for start in range(0, len(word), max_chars)
        ]
        parts.extend(_pack(words, max_chars))
    return parts


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Join consecutive pieces with spaces into chunks of at most `max_chars`."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > max_chars:
            chunks.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks
