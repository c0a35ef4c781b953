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

# Text is NFKC-normalised first, so fullwidth punctuation has become ASCII.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026\u3002])\s+|\n+")
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


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Split at sentence ends, then pack sentences into chunks of at most `max_chars`."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if sentence:
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
