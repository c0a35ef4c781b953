"""Text clean-up (`normalise_text`) and sentence chunking (`chunk_text`)."""

import unicodedata

import pytest

from speech.text import chunk_text, normalise_text, split_sentences

# --- normalise_text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hel\x00lo", "Hello"),  # NUL
        ("a\x07b\x1bc", "abc"),  # BEL, ESC
        ("abc\u202edef", "abcdef"),  # RIGHT-TO-LEFT OVERRIDE
        ("\u202a\u202bx\u202c\u2066y\u2069", "xy"),  # bidi embeddings and isolates
        ("zero\u200bwidth\u200c\u200djoin\ufeff", "zerowidthjoin"),  # ZWSP, ZWNJ, ZWJ, BOM
        ("soft\u00adhyphen", "softhyphen"),  # SOFT HYPHEN is a format character
    ],
)
def test_it_drops_control_and_format_characters(raw, expected):
    assert normalise_text(raw) == expected


def test_it_drops_lone_surrogates_and_the_result_encodes_as_utf8():
    # given text carrying unpaired surrogates (as a JSON "\ud800" escape produces)
    raw = "a\ud800b\udfffc"

    cleaned = normalise_text(raw)

    assert cleaned == "abc"
    assert cleaned.encode("utf-8") == b"abc"


def test_it_drops_private_use_and_unassigned_code_points():
    raw = "x\ue000y\U000f0000z\U0010fffd!\u0378"

    assert normalise_text(raw) == "xyz!"


def test_it_caps_a_flood_of_combining_marks():
    # given one letter under fifty acute accents (a "Zalgo" flood)
    raw = "e" + "\u0301" * 50 + " ok"

    cleaned = normalise_text(raw)

    # then at most four marks stay on the letter, and the rest of the text is untouched
    decomposed = unicodedata.normalize("NFD", cleaned)
    assert decomposed == "e" + "\u0301" * 4 + " ok"


def test_it_caps_each_run_of_combining_marks_separately():
    raw = "a" + "\u0300" * 10 + "b" + "\u0308" * 10

    decomposed = unicodedata.normalize("NFD", normalise_text(raw))

    assert decomposed == "a" + "\u0300" * 4 + "b" + "\u0308" * 4


def test_it_counts_marks_across_dropped_characters():
    # given marks interleaved with zero-width joiners (dropped), the run is still one run
    raw = "o" + "\u0303\u200d" * 20

    decomposed = unicodedata.normalize("NFD", normalise_text(raw))

    assert decomposed == "o" + "\u0303" * 4


def test_it_keeps_ordinary_accents_composed():
    raw = "cafe\u0301 nai\u0308ve"

    assert normalise_text(raw) == "caf\u00e9 na\u00efve"


def test_it_folds_fullwidth_punctuation_and_letters_to_ascii():
    raw = "Hello\uff01 \uff37orld\uff0c yes\uff1f"

    assert normalise_text(raw) == "Hello! World, yes?"


def test_it_expands_compatibility_ligatures():
    # U+FDFA ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM is one code point for four words
    expected = (
        "\u0635\u0644\u0649 \u0627\u0644\u0644\u0647 \u0639\u0644\u064a\u0647 "
        "\u0648\u0633\u0644\u0645"
    )

    cleaned = normalise_text("\ufdfa")

    assert cleaned == expected
    assert len(cleaned.split(" ")) == 4


def test_it_folds_ligatures_and_ellipsis():
    assert normalise_text("\ufb01ne\u2026") == "fine..."


def test_it_collapses_runs_of_whitespace_to_one_space():
    raw = "  one \t two\u00a0\u00a0three\u2003four\u3000\u3000five   "

    assert normalise_text(raw) == "one two three four five"


def test_it_keeps_newlines_as_line_breaks_and_drops_blank_lines():
    raw = "  First line.  \n\n \t \nSecond line\r\n   Third  "

    assert normalise_text(raw) == "First line.\nSecond line\nThird"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   \t  ",
        "\n\n\n",
        "\x00\x01\u202e\u200b\ufeff",
        "\ue000\U000f0001\ud800 \n \udc00",
    ],
)
def test_it_returns_empty_for_junk_only_input(raw):
    assert normalise_text(raw) == ""


def test_it_leaves_plain_text_unchanged():
    raw = "The quick brown fox jumps over the lazy dog. It's 3:45pm, isn't it?"

    assert normalise_text(raw) == raw


# --- chunk_text -------------------------------------------------------------------------------

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. A second sentence follows the first one! "
    "Is this the third sentence? Yes, and it is followed by a fourth; quite a long one, "
    "which goes on: clause after clause, word after word, until the reader tires. "
    "Short. Shorter. End\u2026 Really the end."
)


def test_it_returns_no_chunks_for_empty_text():
    assert chunk_text("", 50) == []
    assert chunk_text("   \n  ", 50) == []


def test_it_keeps_short_text_in_one_chunk():
    assert chunk_text("Hello there. How are you?", 100) == ["Hello there. How are you?"]


def test_it_packs_whole_sentences_into_chunks():
    text = "One two. Three four. Five six. Seven eight."

    # "One two. Three four." is 20 characters; adding " Five six." would make 30
    assert chunk_text(text, 22) == ["One two. Three four.", "Five six. Seven eight."]


def test_it_splits_at_sentence_ends_only_when_followed_by_whitespace():
    # "3.14" and "e.g." mid-word do not end a sentence
    text = "Pi is 3.14 roughly. Next sentence."

    assert chunk_text(text, 20) == ["Pi is 3.14 roughly.", "Next sentence."]


def test_it_treats_newlines_as_sentence_breaks():
    # given two lines without punctuation
    text = "a b\nc d"

    # then each line is a sentence: packed whole, not split as the words "a b c" + "d"
    assert chunk_text(text, 5) == ["a b", "c d"]
    assert chunk_text(text, 100) == ["a b c d"]


@pytest.mark.parametrize("max_chars", [1, 3, 7, 10, 16, 25, 40, 80, 200, 1000])
def test_it_never_exceeds_max_chars(max_chars):
    chunks = chunk_text(PARAGRAPH, max_chars)

    assert chunks
    assert all(0 < len(chunk) <= max_chars for chunk in chunks)


@pytest.mark.parametrize("max_chars", [12, 16, 25, 40, 80, 200, 1000])
def test_it_preserves_words_and_their_order(max_chars):
    # max_chars of at least the longest word ("sentence?" + punctuation) means no hard split
    chunks = chunk_text(PARAGRAPH, max_chars)

    assert " ".join(chunks).split() == PARAGRAPH.split()


@pytest.mark.parametrize("max_chars", [1, 3, 5, 7])
def test_it_preserves_every_character_when_words_are_split_hard(max_chars):
    chunks = chunk_text(PARAGRAPH, max_chars)

    assert "".join(chunks).replace(" ", "") == PARAGRAPH.replace(" ", "")


def test_it_splits_an_overlong_sentence_at_clauses_first():
    sentence = "First clause here, second clause here; third clause here: fourth one."

    chunks = chunk_text(sentence, 20)

    assert chunks == [
        "First clause here,",
        "second clause here;",
        "third clause here:",
        "fourth one.",
    ]


def test_it_splits_at_dashes_as_clause_ends():
    sentence = "Wait for it\u2014 here it comes\u2013 the punchline arrives."

    chunks = chunk_text(sentence, 25)

    assert chunks == ["Wait for it\u2014", "here it comes\u2013", "the punchline arrives."]


def test_it_splits_an_overlong_clause_at_words():
    sentence = "alpha beta gamma delta epsilon zeta eta theta iota kappa"

    chunks = chunk_text(sentence, 16)

    assert chunks == ["alpha beta gamma", "delta epsilon", "zeta eta theta", "iota kappa"]


def test_it_splits_an_overlong_word_hard():
    word = "abcdefghijklmnopqrstuvwxyz"

    assert chunk_text(word, 10) == ["abcdefghij", "klmnopqrst", "uvwxyz"]


def test_it_splits_an_overlong_word_between_other_words():
    text = "go supercalifragilisticexpialidocious now"

    chunks = chunk_text(text, 10)

    assert chunks == ["go", "supercalif", "ragilistic", "expialidoc", "ious now"]
    assert all(len(chunk) <= 10 for chunk in chunks)


def test_it_handles_cjk_sentences_with_ideographic_full_stops():
    text = "\u4eca\u65e5\u306f\u3002 \u660e\u65e5\u3082\u3002"

    assert chunk_text(text, 4) == ["\u4eca\u65e5\u306f\u3002", "\u660e\u65e5\u3082\u3002"]


def test_chunking_normalised_hostile_text_stays_within_bounds():
    # given text that mixes everything normalisation removes with long runs of real words
    raw = ("\u202eWord\u200b " * 60) + "\n\n" + ("x" * 500) + "\x00. " + "\ufdfa" * 10
    text = normalise_text(raw)

    chunks = chunk_text(text, 50)

    assert all(0 < len(chunk) <= 50 for chunk in chunks)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "").replace("\n", "")


@pytest.mark.parametrize("separator", ["\r", "\x85", "\u2028", "\u2029"])
def test_line_separating_controls_become_line_breaks(separator):
    assert normalise_text(f"Hello{separator}world") == "Hello\nworld"


@pytest.mark.parametrize("separator", ["\v", "\f", "\x1c", "\x1f"])
def test_word_separating_controls_become_spaces(separator):
    assert normalise_text(f"Hello{separator}world") == "Hello world"


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="max_chars"):
        chunk_text("Hello.", 0)


# --- split_sentences --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Dr. Smith arrived. He sat down.", ["Dr. Smith arrived.", "He sat down."]),
        ("Mr. and Mrs. Jones left. Bye.", ["Mr. and Mrs. Jones left.", "Bye."]),
        ("Use e.g. this one. Or i.e. that.", ["Use e.g. this one.", "Or i.e. that."]),
        ("U.S. troops left. Then quiet.", ["U.S. troops left.", "Then quiet."]),
        ("They stayed in the U.S. Then they left.", ["They stayed in the U.S.", "Then they left."]),
        ("Pi is 3.14 today. Yes.", ["Pi is 3.14 today.", "Yes."]),
        ("J. K. Rowling wrote it. Fine.", ["J. K. Rowling wrote it.", "Fine."]),
        ("Apples, pears, etc. and more. Done.", ["Apples, pears, etc. and more.", "Done."]),
        ("Apples, pears, etc. The end.", ["Apples, pears, etc.", "The end."]),
        ("See No. 5 here. No. I won't.", ["See No. 5 here.", "No.", "I won't."]),
        ("Brazil vs. Germany tonight. Fun.", ["Brazil vs. Germany tonight.", "Fun."]),
        ("At 9 a.m. we met. Then lunch.", ["At 9 a.m. we met.", "Then lunch."]),
        ('"Stop." He left.', ['"Stop."', "He left."]),
        ("\u201cStop!\u201d He left.", ["\u201cStop!\u201d", "He left."]),
        ("(Really.) Yes.", ["(Really.)", "Yes."]),
        ('He said "Stop!" and left. Ok.', ['He said "Stop!" and left.', "Ok."]),
        ("Wait... what? End... Really.", ["Wait... what?", "End...", "Really."]),
        ("Hmm\u2026 maybe. Fine\u2026 Next.", ["Hmm\u2026 maybe.", "Fine\u2026", "Next."]),
        ("Hello!!! World?! Ok", ["Hello!!!", "World?!", "Ok"]),
        ("1. Buy milk.\n2. Eat it.", ["1. Buy milk.", "2. Eat it."]),
        ("no punctuation\nat all", ["no punctuation", "at all"]),
        ("  spaced   out.   Words \t here  ", ["spaced out.", "Words here"]),
        ("file.txt is here. Ok.", ["file.txt is here.", "Ok."]),
        ("", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_chunking_keeps_an_abbreviation_with_its_sentence():
    text = "Dr. Smith met Prof. Jones at 3.30 p.m. in the U.S. embassy. They talked."

    chunks = chunk_text(text, 60)

    assert chunks == [
        "Dr. Smith met Prof. Jones at 3.30 p.m. in the U.S. embassy.",
        "They talked.",
    ]


def test_chunking_keeps_closing_quotes_with_their_sentence():
    assert chunk_text('"Stop." He left.', 10) == ['"Stop."', "He left."]


PROPERTY_TEXTS = [
    PARAGRAPH,
    "Dr. Smith arrived. He sat down. Mrs. Jones, e.g. the neighbour, waved at 9 a.m. sharp.",
    '"Stop." He left. (Quietly.) She said "Go!" and went\u2026 Then silence... then a door.',
    "U.S. troops, approx. 300 of them, left on Jan. 5. J. R. R. Tolkien wrote 3.14 pages.",
    "one\ntwo three\n\n\nfour. five!six? seven\t\teight   nine",
    "Wait... what?! Really?!? Yes!!! No. 5, No. 6 and No. 7. etc. Fine.",
    "Clause one, clause two; clause three: clause four \u2014 clause five \u2013 end.",
    "\u4eca\u65e5\u306f\u3002 \u660e\u65e5\u3082\u3002 Mixed text. \u00bfQu\u00e9? \u00a1S\u00ed!",
    " ".join(f"Sentence {n} has words." for n in range(60)),
    ' . .. ... ? ! ?! ." .) (. "( x',
    "a.b.c. d.e. F.G. h",
    "\u00a0leading and trailing spaces\u3000\u2003 ",
]


@pytest.mark.parametrize("text", PROPERTY_TEXTS)
def test_split_sentences_drops_duplicates_and_reorders_nothing(text):
    assert " ".join(split_sentences(text)) == " ".join(text.split())


@pytest.mark.parametrize("text", PROPERTY_TEXTS)
@pytest.mark.parametrize("max_chars", [12, 20, 33, 50, 80, 150, 400, 5000])
def test_chunks_join_back_to_the_text_with_whitespace_collapsed(text, max_chars):
    # max_chars of at least the longest word means no word is cut
    assert max_chars >= max(len(word) for word in text.split())

    chunks = chunk_text(text, max_chars)

    assert " ".join(chunks) == " ".join(text.split())
    assert all(0 < len(chunk) <= max_chars for chunk in chunks)


@pytest.mark.parametrize("unit", [".", "a.", ". ", "!?", '."', "1.", "Dr. ", "...x "])
def test_splitting_finishes_on_4096_repeated_characters(unit):
    text = (unit * 4096)[:4095] + "x"

    chunks = chunk_text(text, 200)

    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
