"""Turning written text into the words a speech model should say ("verbalisation").

Speech models read digits, symbols and markup badly or not at all: "$3.50" may come out as
"dollar three point fifty" and "**bold**" as "asterisk asterisk bold". `verbalise` rewrites
such forms as English words before synthesis. It runs after `speech.text.normalise_text`, so
its input has no control characters, is NFKC-folded and has single spaces and no blank lines.

Letter case, apostrophes and sentence punctuation are kept: the model uses them for prosody.

Conventions, chosen so the output reads naturally and predictably:

- Numbers are cardinals ("1,234" -> "one thousand two hundred and thirty-four"); decimals read
  their fraction digit by digit ("3.14" -> "three point one four"); a number with a leading
  zero ("007") or too long to name is read digit by digit.
- A bare four-digit number from 1100 to 2099 is read as a year: "2024" -> "twenty twenty-four",
  "1500" -> "fifteen hundred". Years whose reading has an "oh" (1905, "nineteen oh-five") and
  numbers from 1000 to 1099 are read as years only where context points to one: after words
  such as "in", "since", "from", "the" or a month name, before "to"/"BC"/"AD", or before
  punctuation or the end. "1,234", with a separator, is always a quantity.
- Dates: only unambiguous forms are read as dates: ISO "2024-03-15" and "March 15, 2024" both
  become "March fifteenth, twenty twenty-four"; "15 March 2024" becomes "the fifteenth of March,
  twenty twenty-four". Slash dates ("03/04/2024") are ambiguous between day-first and
  month-first, so they are read as numbers separated by "slash".
- Times use the twelve-hour clock: "10:30" -> "ten thirty", "10:00" -> "ten o'clock",
  "9:05 am" -> "nine oh five a m". A twenty-four-hour time is converted: "14:00" -> "two p m",
  "00:15" -> "twelve fifteen a m".
- Hyphenated digit groups: two groups are a range ("5-10" -> "five to ten"); three or more
  groups, or three digits then four, are a phone number read digit by digit.
- URLs lose their scheme, "www.", query and fragment; e-mail addresses and URLs are spelled with
  "dot", "slash", "at" and so on.
"""

import datetime
import re
import unicodedata
from collections.abc import Callable

from num2words import num2words

# Longest integer part named in words; longer runs of digits are read one digit at a time.
# num2words names far larger numbers, but past the sextillions no listener can follow them.
_MAX_NAMED_DIGITS = 21

# --- number words ---------------------------------------------------------------------------


def _words(number: int, to: str = "cardinal") -> str:
    """Name `number` in English. num2words separates large groups with commas; those would
    make the model pause inside a number and let the chunker split it, so they are dropped."""
    return num2words(number, lang="en", to=to).replace(",", "")


def _digits(digits: str) -> str:
    """Read a string of digits one digit at a time: "007" -> "zero zero seven"."""
    # int() rather than a table: `\d` also matches other scripts' decimal digits.
    return " ".join(_words(int(digit)) for digit in digits)


def _value(digits: str) -> int | None:
    """The value of a digit string, or None if it is longer than any number named in words.

    Every digit run of unbounded length goes through here rather than int(): int() refuses runs
    past 4,300 digits (sys.int_max_str_digits), and a run that long is read digit by digit.
    The other int() calls in this module read single digits or captures bounded by their
    patterns (a day, an hour, a four-digit year).
    """
    return int(digits) if len(digits) <= _MAX_NAMED_DIGITS else None


def _integer(digits: str) -> str:
    """Name a string of digits as one whole number, unless it only reads well digit by digit."""
    if len(digits) > _MAX_NAMED_DIGITS or (len(digits) > 1 and int(digits[0]) == 0):
        return _digits(digits)
    return _words(int(digits))


def _cardinal(number: str) -> str:
    """Name a plain, grouped ("1,234") or decimal ("3.14", ".5") number."""
    whole, _, fraction = number.replace(",", "").partition(".")
    spoken = _integer(whole) if whole else ""
    if fraction:
        spoken = f"{spoken} point {_digits(fraction)}".strip()
    return spoken


def _year(year: int) -> str:
    """Name a year the way it is said: 1999 -> "nineteen ninety-nine"."""
    return _words(year, to="year")


def _ordinal(digits: str) -> str:
    """Name an ordinal from its digits, or read the digits if the number is too long."""
    digits = digits.replace(",", "")
    if len(digits) > _MAX_NAMED_DIGITS:
        return _digits(digits)
    return _words(int(digits), to="ordinal")


def _plural(word: str) -> str:
    """Plural of the last word of a number name: "eighty" -> "eighties", "ten" -> "tens"."""
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def _signed(sign: str | None, words: str) -> str:
    return f"minus {words}" if sign else words


_SPACES = re.compile(r" {2,}")

# --- helpers for substitutions ----------------------------------------------------------------


def _sub(pattern: re.Pattern[str], speak: Callable[[re.Match[str]], str | None], text: str) -> str:
    """Replace each match of `pattern` with `speak(match)`; None keeps the match as it was.

    Words that replace a match glued to letters are spaced off them, so "H2O" becomes
    "H two O" rather than "Htwo O".
    """

    def replace(match: re.Match[str]) -> str:
        spoken = speak(match)
        if spoken is None:
            return match.group()
        source = match.string
        start, end = match.span()
        if spoken[:1].isalnum() and start > 0 and source[start - 1].isalnum():
            spoken = " " + spoken
        if spoken[-1:].isalnum() and end < len(source) and source[end].isalnum():
            spoken += " "
        return spoken

    return pattern.sub(replace, text)


def _previous_word(text: str, index: int) -> tuple[str, int]:
    """The word before `index` and where it starts; ("", -1) if there is none nearby."""
    window_start = max(0, index - 40)
    match = re.search(r"([^\s]+)\s*$", text[window_start:index])
    if match is None:
        return "", -1
    return match.group(1), window_start + match.start(1)


def _at_sentence_start(text: str, index: int) -> bool:
    """Whether `index` starts a line or follows a sentence's end punctuation."""
    # Runs of spaces are collapsed before any step asks, so this walks back a step or two.
    before = index - 1
    while before >= 0 and text[before] == " ":
        before -= 1
    return before < 0 or text[before] in ".!?\n"


def _ends_sentence(text: str, index: int) -> bool:
    """Whether a period at `index` would end a sentence: end of text or line, or a capital next."""
    return re.match(r" ?$| ?\n| [A-Z\"'(]", text[index : index + 2]) is not None


def _ends_line(text: str, index: int) -> bool:
    return re.match(r" ?(?:\n|$)", text[index : index + 2]) is not None


def _in_case_of(words: str, source: str) -> str:
    """Expansion of an abbreviation, capitalised when the abbreviation was ("E.g." -> "For")."""
    return words[0].upper() + words[1:] if source[:1].isupper() else words


# A number as written: grouped thousands or plain digits, either with decimals. The grouped
# alternative backtracks at most three digits, so this cannot blow up.
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
# Where a number may start: not inside a word or another number.
_NUMBER_START = r"(?<![\w.,])"
_SIGN = r"(?P<sign>[-\u2212])?"

# --- markdown -------------------------------------------------------------------------------

# Line prefixes of block quotes, then headings or list items.
_LINE_PREFIX = re.compile(r"^(?:> ?)*(?:#{1,6} +|[-*+] +|\d{1,3}[.)] +)?")
_HEADING_CLOSE = re.compile(r" +#+$")
# Character classes stop at the next bracket or delimiter, so every scan is bounded by it.
_IMAGE = re.compile(r"!\[[^\[\]\n]*\]\([^()\s]*(?: +\"[^\"\n]*\")?\)")
_LINK = re.compile(r"\[([^\[\]\n]*)\]\([^()\s]*(?: +\"[^\"\n]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^<>\s]+|[^<>\s@]+@[^<>\s]+)>")
_EMPHASIS = (
    re.compile(r"\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*"),
    re.compile(r"(?<!\w)__(?=\S)([^_\n]+?)(?<=\S)__(?!\w)"),
    re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"),
    re.compile(r"(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)"),
    re.compile(r"~~(?=\S)([^~\n]+?)(?<=\S)~~"),
)


def _is_markup_line(line: str) -> bool:
    """Horizontal rules, setext underlines, code fences and table separators: nothing to say."""
    if line.startswith(("```", "~~~")):
        return True
    compact = line.replace(" ", "")
    if len(compact) >= 3 and len(set(compact)) == 1 and compact[0] in "-*_=":
        return True
    return "|" in line and "-" in line and set(compact) <= set("|-:")


def _table_row(line: str) -> str:
    """A table row "| a | b |" read as "a, b"."""
    cells = (cell.strip() for cell in line.strip("|").split("|"))
    return ", ".join(cell for cell in cells if cell)


def _strip_inline_markdown(line: str) -> str:
    line = _IMAGE.sub("", line)
    line = _LINK.sub(r"\1", line)
    line = _AUTOLINK.sub(r"\1", line)
    for emphasis in _EMPHASIS:
        line = emphasis.sub(r"\1", line)
    # Whatever markers are left unpaired are never meant to be read aloud.
    return line.replace("`", "").replace("*", "")


def _strip_markdown(text: str) -> str:
    """Remove markdown syntax, keeping the words it decorates."""
    lines: list[str] = []
    for raw_line in text.split("\n"):
        line = raw_line.strip()
        if _is_markup_line(line):
            continue
        if line.startswith("|"):
            line = _table_row(line)
        line = _LINE_PREFIX.sub("", line, count=1)
        line = _HEADING_CLOSE.sub("", line)
        lines.append(_strip_inline_markdown(line))
    return "\n".join(lines)


# --- emoji and other pictographs ------------------------------------------------------------

# Symbols a later step turns into words, so they must survive the purge of pictographs.
_SPOKEN_SYMBOLS = frozenset("\u00b0")
_EMOJI_PARTS = frozenset(
    {
        0xFE0E,  # text presentation selector
        0xFE0F,  # emoji presentation selector
        0x20E3,  # combining enclosing keycap
    }
)


def _is_pictograph(char: str) -> bool:
    """Emoji, dingbats, arrows and similar symbols that have no spoken form."""
    if char in _SPOKEN_SYMBOLS:
        return False
    code = ord(char)
    if code in _EMOJI_PARTS or 0x1F3FB <= code <= 0x1F3FF:  # skin-tone modifiers
        return True
    category = unicodedata.category(char)
    return category == "So" or (category == "Sm" and 0x2190 <= code <= 0x21FF)


def _drop_pictographs(text: str) -> str:
    # A space, not nothing, in case the pictograph was the only thing between two words.
    kept = "".join(" " if _is_pictograph(char) else char for char in text)
    return _SPACES.sub(" ", kept)


# --- e-mail addresses and URLs --------------------------------------------------------------

_SYMBOL_WORDS = {
    ".": "dot",
    "/": "slash",
    "@": "at",
    ":": "colon",
    "_": "underscore",
    "-": "dash",
    "~": "tilde",
    "+": "plus",
    "=": "equals",
    "&": "and",
    "%": "percent",
}
_ADDRESS_SYMBOL = re.compile(r"[./@:_~+=&%-]")
_EMAIL = re.compile(r"(?<![\w.+-])(?:mailto:)?[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?<![\w@.])(?:(?:https?|ftp)://|www\.)[^\s<>\"'()\[\]]+", re.IGNORECASE)
# Bare domains only with common top-level domains, so "file.txt" or "Node.js" stay as written.
_BARE_DOMAIN = re.compile(
    r"(?<![\w@./-])(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|dev|ai|app|co|uk)"
    r"(?:/[^\s<>\"'()\[\]]*)?(?![\w-])",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"^(?:(?:https?|ftp)://|mailto:)?(?:www\.)?", re.IGNORECASE)


def _spell_address(address: str) -> str:
    """Spell an address with words for its symbols: "a.b@x.org" -> "a dot b at x dot org"."""
    spoken = _ADDRESS_SYMBOL.sub(lambda symbol: f" {_SYMBOL_WORDS[symbol.group()]} ", address)
    return " ".join(spoken.split())


def _speak_email(match: re.Match[str]) -> str:
    return _spell_address(_SCHEME.sub("", match.group(), count=1))


def _speak_url(match: re.Match[str]) -> str:
    url = match.group()
    # Sentence punctuation after a URL belongs to the sentence.
    stripped = url.rstrip(".,;:!?")
    trailing = url[len(stripped) :]
    # Query strings and fragments are machine noise when read aloud.
    address = re.split(r"[?#]", _SCHEME.sub("", stripped, count=1), maxsplit=1)[0].rstrip("/")
    return _spell_address(address) + trailing


def _speak_addresses(text: str) -> str:
    text = _sub(_EMAIL, _speak_email, text)
    text = _sub(_URL, _speak_url, text)
    return _sub(_BARE_DOMAIN, _speak_url, text)


# --- abbreviations --------------------------------------------------------------------------

# Titles before a name: the period never ends a sentence, so it is dropped with the expansion.
_TITLES = {
    "Dr": "Doctor",
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Prof": "Professor",
    "Rev": "Reverend",
    "Mt": "Mount",
    "Capt": "Captain",
    "Gen": "General",
    "Sgt": "Sergeant",
    "Lt": "Lieutenant",
    "Col": "Colonel",
    "Gov": "Governor",
}
# Titles also written without a period, British style ("Mr Smith").
_UNDOTTED_TITLES = ("Dr", "Mr", "Mrs", "Ms", "Prof")
_TITLE = re.compile(
    r"\b(?:(?P<dotted>" + "|".join(_TITLES) + r")\."
    r"|(?P<undotted>" + "|".join(_UNDOTTED_TITLES) + r")(?= +[A-Z]))"
)
# Abbreviations that may end a sentence: the period is kept when it does.
_SENTENCE_FINAL = {"etc": "etcetera", "Jr": "Junior", "Sr": "Senior", "approx": "approximately"}
_FINAL_ABBREVIATION = re.compile(r"\b(?P<abbreviation>etc|Jr|Sr|approx)\.")
# Latin abbreviations, with or without the spaces and periods people put in them.
_FOR_EXAMPLE = re.compile(r"(?<![\w.])[Ee]\. ?g(?:\.|(?!\w))")
_THAT_IS = re.compile(r"(?<![\w.])[Ii]\. ?e(?:\.|(?!\w))")
_VERSUS = re.compile(r"\b[Vv]s\b\.?")
_NUMBER_SIGN = re.compile(r"(?<![\w#])(?:(?P<word>[Nn]o)\. ?|#)(?=\d)")
_SAINT_OR_STREET = re.compile(r"\bSt\.")


def _speak_title(match: re.Match[str]) -> str:
    title = _TITLES[match.group("dotted") or match.group("undotted")]
    # Only at the end of a line can the title's period also be the sentence's.
    return title + "." if match.group("dotted") and _ends_line(match.string, match.end()) else title


def _speak_final_abbreviation(match: re.Match[str]) -> str:
    words = _in_case_of(_SENTENCE_FINAL[match.group("abbreviation")], match.group())
    return words + "." if _ends_sentence(match.string, match.end()) else words


def _speak_saint_or_street(match: re.Match[str]) -> str:
    """ "St. Louis" is a saint, "Main St." a street: a capitalised word just before "St."
    names the street, unless that word merely opens the sentence ("Visit St. Paul's")."""
    text = match.string
    previous, previous_start = _previous_word(text, match.start())
    named_street = previous[:1].isupper() and not _at_sentence_start(text, previous_start)
    if not named_street and re.match(r" [A-Z]", text[match.end() : match.end() + 2]):
        return "Saint"
    return "Street." if _ends_sentence(text, match.end()) else "Street"


def _speak_number_sign(match: re.Match[str]) -> str:
    # "No." is capitalised wherever it stands, so only a sentence start capitalises "number".
    return "Number " if _at_sentence_start(match.string, match.start()) else "number "


def _expand_abbreviations(text: str) -> str:
    text = _sub(_TITLE, _speak_title, text)
    text = _sub(_SAINT_OR_STREET, _speak_saint_or_street, text)
    text = _sub(_FINAL_ABBREVIATION, _speak_final_abbreviation, text)
    text = _sub(_FOR_EXAMPLE, lambda m: _in_case_of("for example", m.group()), text)
    text = _sub(_THAT_IS, lambda m: _in_case_of("that is", m.group()), text)
    text = _sub(_VERSUS, lambda m: _in_case_of("versus", m.group()), text)
    return _sub(_NUMBER_SIGN, _speak_number_sign, text)


# --- dates ----------------------------------------------------------------------------------

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_NUMBERS = {name: number for number, name in enumerate(_MONTHS, start=1)}
_MONTH_NUMBERS |= {name[:3]: number for name, number in _MONTH_NUMBERS.items()}
_MONTH_NUMBERS["Sept"] = 9
# Longest first, so "Sept" wins over "Sep" and "June" over "Jun".
_MONTH = "|".join(sorted(_MONTH_NUMBERS, key=len, reverse=True))
_YEAR_AFTER_DAY = r"(?:,? (?P<year>\d{4})(?![\w/]|[.,:]\d))?"
_ISO_DATE = re.compile(r"(?<![\w.,/-])(\d{4})-(\d{2})-(\d{2})(?![\w/]|-\d|[.,:]\d)")
_MONTH_FIRST = re.compile(
    rf"\b(?P<month>{_MONTH})\.? (?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?![\w:/-]|[.,]\d)"
    + _YEAR_AFTER_DAY
)
_DAY_FIRST = re.compile(
    rf"(?<![\w.,:/-])(?P<day>\d{{1,2}})(?:st|nd|rd|th)? (?:of )?(?P<month>{_MONTH})\b"
    rf"(?:\.?,? (?P<year>\d{{4}})(?![\w/]|[.,:]\d))?"
)


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _speak_iso_date(match: re.Match[str]) -> str | None:
    year, month, day = (int(part) for part in match.groups())
    if not _valid_date(year, month, day):
        return None
    return f"{_MONTHS[month - 1]} {_words(day, to='ordinal')}, {_year(year)}"


def _date_parts(match: re.Match[str]) -> tuple[str, str, str] | None:
    """Month name, spoken day and spoken year ("" if absent), or None if it is no real date."""
    month = _MONTH_NUMBERS[match.group("month")]
    day = int(match.group("day"))
    year = match.group("year")
    # 2024 is a leap year, so a year-less February 29th is accepted.
    if not _valid_date(int(year) if year else 2024, month, day):
        return None
    return _MONTHS[month - 1], _words(day, to="ordinal"), _year(int(year)) if year else ""


def _speak_month_first(match: re.Match[str]) -> str | None:
    parts = _date_parts(match)
    if parts is None:
        return None
    month, day, year = parts
    return f"{month} {day}, {year}" if year else f"{month} {day}"


def _speak_day_first(match: re.Match[str]) -> str | None:
    parts = _date_parts(match)
    if parts is None:
        return None
    month, day, year = parts
    # "on the 15th of March" already has its article.
    article = "" if _previous_word(match.string, match.start())[0].lower() == "the" else "the "
    spoken = f"{article}{day} of {month}"
    return f"{spoken}, {year}" if year else spoken


def _speak_dates(text: str) -> str:
    text = _sub(_ISO_DATE, _speak_iso_date, text)
    text = _sub(_MONTH_FIRST, _speak_month_first, text)
    return _sub(_DAY_FIRST, _speak_day_first, text)


# --- ranges, phone numbers, fractions -------------------------------------------------------

_HYPHENATED = re.compile(
    r"(?<![\w.,:/\u2212-])\d+(?:[.:]\d+)?(?:-\d+(?:[.:]\d+)?)+(?![\w-]|[.,:]\d)"
)
_SLASHED = re.compile(r"(?<![\w.,/\u2044])\d+(?:[/\u2044]\d+)+(?![\w/\u2044]|[.,]\d)")
# Denominators read as fractions; others ("3/15", "16/9") are more likely dates or ratios.
_FRACTION_DENOMINATORS = frozenset({2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 64, 100})
_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def _speak_hyphenated(match: re.Match[str]) -> str | None:
    groups = match.group().split("-")
    if all(group.isdigit() for group in groups) and (
        len(groups) > 2 or [len(group) for group in groups] == [3, 4]
    ):
        return ", ".join(_digits(group) for group in groups)
    if len(groups) == 2:
        # The numbers themselves are named by the later steps, which know about times.
        return " to ".join(groups)
    return None


def _speak_slashed(match: re.Match[str]) -> str:
    parts = re.split(r"[/\u2044]", match.group())
    numerator, denominator = _value(parts[0]), _value(parts[-1])
    if len(parts) == 2 and numerator is not None and denominator is not None:
        if (numerator, denominator) == (24, 7):
            return "twenty-four seven"
        if 0 < numerator < denominator and denominator in _FRACTION_DENOMINATORS:
            singular, plural = _FRACTION_NAMES.get(denominator) or (
                _words(denominator, to="ordinal"),
                _plural(_words(denominator, to="ordinal")),
            )
            return f"{_words(numerator)} {singular if numerator == 1 else plural}"
    return " slash ".join(parts)


# --- times ----------------------------------------------------------------------------------

# A period after "a.m." is eaten only when the sentence plainly goes on after it.
_MERIDIEM = r"(?P<meridiem>[AaPp])\.? ?[Mm](?![A-Za-z])(?:\.(?= ?[,;]| [a-z]))?"
_CLOCK_TIME = re.compile(
    r"(?<![\w:.,])(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?::(?P<second>[0-5]\d))?"
    rf"(?![\d:]|[.,]\d)(?: ?{_MERIDIEM})?"
)
_HOUR_TIME = re.compile(rf"(?<![\w:.,])(?P<hour>1[0-2]|0?[1-9]) ?{_MERIDIEM}")


def _speak_time(match: re.Match[str]) -> str:
    """Read a time on the twelve-hour clock; twenty-four-hour times gain "a m" or "p m"."""
    groups = match.groupdict()
    hour = int(groups["hour"])
    minute = int(groups.get("minute") or 0)
    second = int(groups.get("second") or 0)
    meridiem = groups["meridiem"]
    suffix = f"{meridiem.lower()} m" if meridiem else None
    if hour == 0:
        hour, suffix = 12, "a m"
    elif hour > 12:
        hour, suffix = hour - 12, "p m"
    words = [_words(hour)]
    if minute == 0 and suffix is None:
        words.append("o'clock")
    elif 0 < minute < 10:
        words.append(f"oh {_words(minute)}")
    elif minute:
        words.append(_words(minute))
    if second:
        words.append(f"and {_words(second)} {'second' if second == 1 else 'seconds'}")
    if suffix:
        words.append(suffix)
    return " ".join(words)


def _speak_times(text: str) -> str:
    text = _sub(_CLOCK_TIME, _speak_time, text)
    return _sub(_HOUR_TIME, _speak_time, text)


# --- money, percentages, measurements -------------------------------------------------------

# Symbol: (one major unit, many major units, one minor unit, many minor units).
_CURRENCIES: dict[str, tuple[str, str, str | None, str | None]] = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "\u20ac": ("euro", "euros", "cent", "cents"),
    "\u00a3": ("pound", "pounds", "penny", "pence"),
    "\u00a5": ("yen", "yen", None, None),
}
_SCALES = {
    "k": "thousand",
    "m": "million",
    "b": "billion",
    "bn": "billion",
    "thousand": "thousand",
    "million": "million",
    "billion": "billion",
    "trillion": "trillion",
}
_SCALE = r"(?: ?(?P<scale>(?i:thousand|million|billion|trillion|bn)|[kKmMbB])(?!\w))?"
_CURRENCY_SYMBOL = "[$\u20ac\u00a3\u00a5]"
_MONEY_BEFORE = re.compile(
    rf"(?:(?<![\w.,])(?P<sign>[-\u2212]))?(?P<symbol>{_CURRENCY_SYMBOL}) ?(?P<number>{_NUMBER})"
    + _SCALE
)
_MONEY_AFTER = re.compile(
    rf"{_NUMBER_START}{_SIGN}(?P<number>{_NUMBER}){_SCALE} ?(?P<symbol>{_CURRENCY_SYMBOL})"
)
_CENTS = re.compile(rf"{_NUMBER_START}(?P<number>\d+) ?\u00a2")
_PERCENT = re.compile(rf"{_NUMBER_START}{_SIGN}(?P<number>{_NUMBER}) ?%")

# Unit: (singular, plural). Only units that cannot be mistaken for words or other meanings
# after a number: "m" (metres? million? minutes?) and "in" are left alone.
_UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "kW": ("kilowatt", "kilowatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "ms": ("millisecond", "milliseconds"),
    "sec": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "\u00b0C": ("degree Celsius", "degrees Celsius"),
    "\u00b0F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "\u00b0": ("degree", "degrees"),
}
# A height in feet and inches: 5'10".
_HEIGHT = re.compile(
    r"(?<![\w.,'\u2019])(?P<feet>\d)['\u2019](?P<inches>1[01]|\d)(?:\"|''|\u201d)(?!\w)"
)
_MEASUREMENT = re.compile(
    rf"{_NUMBER_START}{_SIGN}(?P<number>{_NUMBER}) ?"
    rf"(?P<unit>{'|'.join(re.escape(unit) for unit in sorted(_UNITS, key=len, reverse=True))})"
    r"(?![\w/])"
)


def _speak_height(match: re.Match[str]) -> str:
    return f"{_words(int(match.group('feet')))} foot {_words(int(match.group('inches')))}"


def _speak_money(match: re.Match[str]) -> str:
    major, majors, minor, minors = _CURRENCIES[match.group("symbol")]
    number = match.group("number")
    scale = match.group("scale")
    if scale:
        spoken = f"{_cardinal(number)} {_SCALES[scale.lower()]} {majors}"
        return _signed(match.group("sign"), spoken)
    whole, _, fraction = number.replace(",", "").partition(".")
    if minor is None or minors is None or len(fraction) > 2:
        spoken = f"{_cardinal(number)} {major if number == '1' else majors}"
        return _signed(match.group("sign"), spoken)
    # "$3.5" is written for three dollars fifty, not three dollars five.
    units, cents = _value(whole), int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    # A run too long to have a value (None) is read digit by digit, as dollars.
    if units != 0 or not cents:
        parts.append(f"{_integer(whole)} {major if units == 1 else majors}")
    if cents:
        parts.append(f"{_words(cents)} {minor if cents == 1 else minors}")
    return _signed(match.group("sign"), " and ".join(parts))


def _speak_cents(match: re.Match[str]) -> str:
    number = match.group("number")
    return f"{_integer(number)} {'cent' if number == '1' else 'cents'}"


def _speak_percent(match: re.Match[str]) -> str:
    return _signed(match.group("sign"), f"{_cardinal(match.group('number'))} percent")


def _speak_measurement(match: re.Match[str]) -> str:
    singular, plural = _UNITS[match.group("unit")]
    number = match.group("number")
    unit = singular if number == "1" else plural
    return _signed(match.group("sign"), f"{_cardinal(number)} {unit}")


def _speak_quantities(text: str) -> str:
    text = _sub(_MONEY_BEFORE, _speak_money, text)
    text = _sub(_MONEY_AFTER, _speak_money, text)
    text = _sub(_CENTS, _speak_cents, text)
    text = _sub(_PERCENT, _speak_percent, text)
    text = _sub(_HEIGHT, _speak_height, text)
    return _sub(_MEASUREMENT, _speak_measurement, text)


# --- ordinals, decades, plain numbers -------------------------------------------------------

_ORDINAL = re.compile(
    rf"{_NUMBER_START}(?P<number>\d{{1,3}}(?:,\d{{3}})+|\d+)(?:st|nd|rd|th|ST|ND|RD|TH)(?!\w)"
)
_DECADE = re.compile(r"(?<![\w.,'\u2019])['\u2019]?(?P<decade>\d{3}0|\d0)['\u2019]?s(?!\w)")
# A digit run and what precedes it: a minus sign or a leading decimal point counts only where
# it does not join two words ("COVID-19", "v.2"). Every piece is one character or one greedy
# class, so the scan is linear.
_NUMBER_RUN = re.compile(
    r"(?:(?<![\w.,])(?P<sign>[-\u2212]))?(?:(?<![\w.,])(?P<point>\.))?(?<!\d)(?P<run>\d[\d.,]*)"
)
_PLAIN = re.compile(r"\d+")
_SINGLE_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+")
_DOTTED = re.compile(r"\d+(?:\.\d+){2,}")
_YEAR_BEFORE = re.compile(
    r"\b(?:in|since|by|from|until|till|to|of|year|circa|around|before|after|during|the|and|or"
    r"|through|between|early|late|mid|spring|summer|autumn|fall|winter|" + _MONTH + r")\W{0,2}$",
    re.IGNORECASE,
)
_YEAR_AFTER = re.compile(
    r" ?$| ?\n|[.,;:!?)\]\"'\u2019]| (?:to|and|or|AD|BC|BCE|CE|A\.D\.|B\.C\.)\b"
)


def _speak_ordinal(match: re.Match[str]) -> str:
    return _ordinal(match.group("number"))


def _speak_decade(match: re.Match[str]) -> str | None:
    decade = match.group("decade")
    if decade == "00":
        return None
    spoken = _year(int(decade)) if len(decade) == 4 else _words(int(decade))
    return _plural(spoken)


def _looks_like_year(text: str, start: int, end: int, digits: str) -> bool:
    """Whether a bare four-digit number is better read as a year.

    Quantities this large are usually written with a separator ("1,500"), years never are, and
    a year reading of a round quantity is natural anyway ("fifteen hundred people"). So from
    1100 to 2099 the year reading is the default; only readings with "oh" ("nineteen oh-five"),
    and anything from 1000 to 1099 ("ten sixty-six"), need a neighbour that points to a year.
    """
    if len(digits) != 4 or not 1000 <= int(digits) <= 2099:
        return False
    if int(digits) >= 1100 and "oh-" not in _year(int(digits)):
        return True
    if _YEAR_BEFORE.search(text[max(0, start - 12) : start]):
        return True
    return _YEAR_AFTER.match(text[end : end + 5]) is not None


def _speak_number_run(match: re.Match[str]) -> str:
    run = match.group("run")
    token = run.rstrip(".,")
    # Sentence punctuation after a number is not part of it.
    trailing = run[len(token) :]
    if match.group("point"):
        token = "." + token
    if _PLAIN.fullmatch(token):
        end = match.start("run") + len(token)
        if not match.group("sign") and _looks_like_year(match.string, match.start(), end, token):
            spoken = _year(int(token))
        else:
            spoken = _integer(token)
    elif _SINGLE_NUMBER.fullmatch(token):
        spoken = _cardinal(token)
    elif _DOTTED.fullmatch(token):
        # Version numbers and IP addresses.
        spoken = " dot ".join(_integer(part) for part in token.split("."))
    else:
        # Lists written without spaces ("1,2,3") and other mixtures: name each digit group.
        spoken = re.sub(r"\d+", lambda group: _integer(group.group()), token)
        spoken = spoken.replace(",", ", ").replace(".", " point ")
    return _signed(match.group("sign"), spoken) + trailing


def _speak_numbers(text: str) -> str:
    text = _sub(_ORDINAL, _speak_ordinal, text)
    text = _sub(_DECADE, _speak_decade, text)
    return _sub(_NUMBER_RUN, _speak_number_run, text)


# --- final tidy -----------------------------------------------------------------------------

_SPACE_BEFORE_PUNCTUATION = re.compile(r" +(?=[,.;:!?])")


def _tidy(text: str) -> str:
    """Spell the ampersand, drop symbols nothing claimed, and clean up spacing left behind."""
    text = text.replace(" & ", " and ").replace("\u00b0", "")
    lines = []
    for line in text.split("\n"):
        line = _SPACE_BEFORE_PUNCTUATION.sub("", _SPACES.sub(" ", line)).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


# Order matters: markup and addresses go before anything reads their digits and dots; dates,
# ranges and times before money and plain numbers, which would otherwise take their digits.
_STEPS: tuple[Callable[[str], str], ...] = (
    _strip_markdown,
    _drop_pictographs,
    _speak_addresses,
    _expand_abbreviations,
    _speak_dates,
    lambda text: _sub(_HYPHENATED, _speak_hyphenated, text),
    lambda text: _sub(_SLASHED, _speak_slashed, text),
    _speak_times,
    _speak_quantities,
    _speak_numbers,
    _tidy,
)


def verbalise(text: str) -> str:
    """Rewrite normalised text as the words to be spoken; "" means nothing is left to say."""
    for step in _STEPS:
        text = step(text)
    return text
