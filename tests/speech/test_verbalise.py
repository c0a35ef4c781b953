"""Verbalisation: written forms (numbers, money, dates, markup...) rewritten as spoken words."""

import pytest

from speech.text import normalise_text
from speech.verbalise import verbalise


def spoken(raw: str) -> str:
    # verbalise runs on normalised text in production, so the tests feed it the same.
    return verbalise(normalise_text(raw))


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", "zero"),
        ("7", "seven"),
        ("42", "forty-two"),
        ("Room 101", "Room one hundred and one"),
        ("1,234", "one thousand two hundred and thirty-four"),
        (
            "1,234,567",
            "one million two hundred and thirty-four thousand five hundred and sixty-seven",
        ),
        ("-42", "minus forty-two"),
        ("It fell to \u221212 overnight.", "It fell to minus twelve overnight."),
        ("3.14", "three point one four"),
        ("0.5", "zero point five"),
        (".5", "point five"),
        ("-0.25", "minus zero point two five"),
        ("1,000.75", "one thousand point seven five"),
        ("007", "zero zero seven"),
        (
            "Call 1-800-555-0199 now.",
            "Call one, eight zero zero, five five five, zero one nine nine now.",
        ),
        ("555-1234", "five five five, one two three four"),
        ("pages 5-10", "pages five to ten"),
        (
            "192.168.0.1",
            "one hundred and ninety-two dot one hundred and sixty-eight dot zero dot one",
        ),
        ("iOS 17.4.1", "iOS seventeen dot four dot one"),
        ("1,2,3", "one, two, three"),
        ("H2O and MP3 and 3D", "H two O and MP three and three D"),
        ("COVID-19", "COVID-nineteen"),
        ("Let's meet at 5.", "Let's meet at five."),
    ],
)
def test_it_reads_cardinal_numbers(raw, expected):
    assert spoken(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1st", "first"),
        ("2nd place", "second place"),
        ("the 22nd", "the twenty-second"),
        ("103rd", "one hundred and third"),
        ("the 21st century", "the twenty-first century"),
        ("1,000th visitor", "one thousandth visitor"),
        ("4TH", "fourth"),
    ],
)
def test_it_reads_ordinals(raw, expected):
    assert spoken(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("in 1999", "in nineteen ninety-nine"),
        ("2024", "twenty twenty-four"),
        ("The 2024 budget", "The twenty twenty-four budget"),
        ("since 2001", "since two thousand and one"),
        ("from 1990 to 2010", "from nineteen ninety to twenty ten"),
        ("in 1905", "in nineteen oh-five"),
        ("The year 1066.", "The year ten sixty-six."),
        ("There were 1500 people.", "There were fifteen hundred people."),
        # an "oh" year reading sounds wrong for a quantity, so without context it is a number
        ("1905 people", "one thousand nine hundred and five people"),
        ("It cost 2,024 in total.", "It cost two thousand and twenty-four in total."),
        ("the 1990s", "the nineteen nineties"),
        ("the '80s", "the eighties"),
        ("in 2019-2020", "in twenty nineteen to twenty twenty"),
    ],
)
def test_it_reads_years_as_years(raw, expected):
    assert spoken(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1/2 cup", "one half cup"),
        ("3/4 mile", "three quarters mile"),
        ("2/3", "two thirds"),
        ("\u00bd", "one half"),  # NFKC turns the vulgar fraction into 1, FRACTION SLASH, 2
        ("open 24/7", "open twenty-four seven"),
        ("16/9 screens", "sixteen slash nine screens"),
    ],
)
def test_it_reads_fractions(raw, expected):
    assert spoken(raw) == expected


# --- money and percentages --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$3.50", "three dollars and fifty cents"),
        ("$1", "one dollar"),
        ("$0.99", "ninety-nine cents"),
        ("$0.01", "one cent"),
        ("$1.01", "one dollar and one cent"),
        ("$1.5", "one dollar and fifty cents"),
        ("$3.00", "three dollars"),
        ("$1,000,000", "one million dollars"),
        ("$5M", "five million dollars"),
        ("$2.5 billion", "two point five billion dollars"),
        ("$1.2k", "one point two thousand dollars"),
        ("$4.2bn.", "four point two billion dollars."),
        ("$10.999", "ten point nine nine nine dollars"),
        ("-$5", "minus five dollars"),
        ("\u20ac20", "twenty euros"),
        ("\u20ac1", "one euro"),
        ("20\u20ac", "twenty euros"),
        ("5 \u20ac", "five euros"),
        ("\u20ac3.50", "three euros and fifty cents"),
        ("\u00a320", "twenty pounds"),
        ("\u00a31.01", "one pound and one penny"),
        ("\u00a30.50", "fifty pence"),
        ("\u00a51000", "one thousand yen"),
        ("50\u00a2", "fifty cents"),
        ("It costs $5 and \u20ac3.", "It costs five dollars and three euros."),
    ],
)
def test_it_reads_money(raw, expected):
    assert spoken(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("45%", "forty-five percent"),
        ("3.5%", "three point five percent"),
        ("100 %", "one hundred percent"),
        ("-2%", "minus two percent"),
        ("I gave it 110%!", "I gave it one hundred and ten percent!"),
        ("5-10%", "five to ten percent"),
    ],
)
def test_it_reads_percentages(raw, expected):
    assert spoken(raw) == expected


# --- dates and times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-15", "March fifteenth, twenty twenty-four"),
        ("On 1999-12-31.", "On December thirty-first, nineteen ninety-nine."),
        ("March 15, 2024", "March fifteenth, twenty twenty-four"),
        ("March 15 2024", "March fifteenth, twenty twenty-four"),
        ("July 4, 1776", "July fourth, seventeen seventy-six"),
        ("Sept. 11, 2001", "September eleventh, two thousand and one"),
        ("Mar. 3", "March third"),
        ("May 5th", "May fifth"),
        ("15 March 2024", "the fifteenth of March, twenty twenty-four"),
        ("on the 15th of March", "on the fifteenth of March"),
        ("on 4th July", "on the fourth of July"),
        ("March 2020", "March twenty twenty"),
        # slash dates are ambiguous (day or month first), so they stay numbers
        ("15/03/2024", "fifteen slash zero three slash twenty twenty-four"),
        # not a real date: the digits are read as a phone-style sequence, not a date
        ("2024-02-30", "two zero two four, zero two, three zero"),
    ],
)
def test_it_reads_dates(raw, expected):
    assert spoken(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10:30", "ten thirty"),
        ("10:00", "ten o'clock"),
        ("9:05 am", "nine oh five a m"),
        ("9:05AM", "nine oh five a m"),
        ("10:00 pm", "ten p m"),
        ("14:00", "two p m"),
        ("14:30", "two thirty p m"),
        ("00:15", "twelve fifteen a m"),
        ("12:00.", "twelve o'clock."),
        ("10:30:15", "ten thirty and fifteen seconds"),
        ("It's 3:45pm, isn't it?", "It's three forty-five p m, isn't it?"),
        ("It was 9pm.", "It was nine p m."),
        ("at 9 a.m. we met", "at nine a m we met"),
        ("at 9 a.m. We met", "at nine a m. We met"),
        ("10:30-11:30", "ten thirty to eleven thirty"),
        ("From 9:00 to 17:30", "From nine o'clock to five thirty p m"),
    ],
)
def test_it_reads_times(raw, expected):
    assert spoken(raw) == expected


# --- abbreviations and units ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Dr. Smith", "Doctor Smith"),
        ("Mr. and Mrs. Jones", "Mister and Missus Jones"),
        ("Ms. Lee met Mr Brown.", "Miz Lee met Mister Brown."),
        ("Prof. Xavier", "Professor Xavier"),
        ("St. Louis is on Main St. Really.", "Saint Louis is on Main Street. Really."),
        ("apples, pears, etc. and more", "apples, pears, etcetera and more"),
        ("apples, pears, etc.", "apples, pears, etcetera."),
        ("fruit, e.g. apples", "fruit, for example apples"),
        ("E.g. this one", "For example this one"),
        ("Some text (e.g., this) and more.", "Some text (for example, this) and more."),
        ("that one, i.e. the red one", "that one, that is the red one"),
        ("Brazil vs. Germany", "Brazil versus Germany"),
        ("approx. 20 people", "approximately twenty people"),
        ("My No. 1 fan", "My number one fan"),
        ("No. 5 is mine.", "Number five is mine."),
        ("No. I refuse.", "No. I refuse."),
        ("Ticket #42", "Ticket number forty-two"),
        ("R & D", "R and D"),
    ],
)
def test_it_expands_abbreviations(raw, expected):
    assert spoken(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5 km", "five kilometers"),
        ("1 km", "one kilometer"),
        ("10km, 5kg, 3GB", "ten kilometers, five kilograms, three gigabytes"),
        ("2.5 kg", "two point five kilograms"),
        ("10 cm", "ten centimeters"),
        ("60 mph", "sixty miles per hour"),
        ("100 km/h", "one hundred kilometers per hour"),
        ("6 ft", "six feet"),
        ("2.4GHz", "two point four gigahertz"),
        ("20\u00b0C", "twenty degrees Celsius"),
        ("-5 \u00b0F", "minus five degrees Fahrenheit"),
        ("a 90\u00b0 turn", "a ninety degrees turn"),
        ("I'm 5'10\" tall", "I'm five foot ten tall"),
        ("10 minutes", "ten minutes"),
    ],
)
def test_it_reads_units_after_numbers(raw, expected):
    assert spoken(raw) == expected


# --- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com/path", "example dot com slash path"),
        ("See https://www.example.com/a/b?q=1#top.", "See example dot com slash a slash b."),
        ("http://example.org/", "example dot org"),
        ("Check www.google.com.", "Check google dot com."),
        ("Visit example.org/docs now", "Visit example dot org slash docs now"),
        ("my-site.io", "my dash site dot io"),
        ("a.b@example.org", "a dot b at example dot org"),
        (
            "Mail me at first_last@mail.example.co.uk.",
            "Mail me at first underscore last at mail dot example dot co dot uk.",
        ),
        ("John.Doe+tag@example.com", "John dot Doe plus tag at example dot com"),
        # file names and code identifiers with unlisted endings stay as written
        ("Open notes.txt with Node.js", "Open notes.txt with Node.js"),
    ],
)
def test_it_spells_urls_and_email_addresses(raw, expected):
    assert spoken(raw) == expected


# --- markdown and pictographs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("# Heading", "Heading"),
        ("## Title ##", "Title"),
        ("**bold** and *it* and _it_ and `code`", "bold and it and it and code"),
        ("***very*** important", "very important"),
        ("__strong__ words", "strong words"),
        ("~~gone~~ here", "gone here"),
        ("[the docs](https://x.org) say so", "the docs say so"),
        ('[a link](https://x.org "Title") here', "a link here"),
        ("Look: ![a cat](cat.png) nice", "Look: nice"),
        ("<https://x.org>", "x dot org"),
        ("- item one\n- item two", "item one\nitem two"),
        ("* star item\n+ plus item", "star item\nplus item"),
        ("1. first\n2) second", "first\nsecond"),
        ("> quoted\n> > nested", "quoted\nnested"),
        ("| a | b |\n|---|:--:|\n| 1 | 2 |", "a, b\none, two"),
        ("Above\n---\nBelow", "Above\nBelow"),
        ("Title\n===", "Title"),
        ("```python\nprint(x)\n```", "print(x)"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("**Note:** see [docs](http://x.io)", "Note: see docs"),
    ],
)
def test_it_removes_markdown(raw, expected):
    assert spoken(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello \U0001f44b world!", "Hello world!"),
        ("Party \U0001f389\U0001f389!", "Party!"),
        ("Thumbs \U0001f44d\U0001f3fd up", "Thumbs up"),  # with a skin-tone modifier
        ("Family \U0001f468\u200d\U0001f469\u200d\U0001f467 time", "Family time"),  # ZWJ sequence
        ("I \u2764\ufe0f you", "I you"),
        ("Flag \U0001f1eb\U0001f1f7 here", "Flag here"),  # regional indicators
        ("1\ufe0f\u20e3 keycap", "one keycap"),
        ("Go \u2192 there \u2605", "Go there"),
        ("\U0001f600\U0001f600\U0001f600", ""),
    ],
)
def test_it_removes_emoji_and_pictographs(raw, expected):
    assert spoken(raw) == expected


# --- what must be left alone ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "we'll",
        "Don't do that.",
        "NASA and the U.S. Army",
        "It's fine, isn't it?",
        "O'Brien's dog",
        "rock 'n' roll",
        "She said \u201cno\u201d and left\u2026",
        "Wait... what?!",
        "CamelCase and lowercase and UPPERCASE",
        "Caf\u00e9 na\u00efve r\u00e9sum\u00e9",
        "\u4eca\u65e5\u306f\u3002",
        "",
    ],
)
def test_it_keeps_words_case_apostrophes_and_punctuation(raw):
    assert spoken(raw) == normalise_text(raw)


def test_it_keeps_line_breaks_between_sentences():
    assert spoken("First line.\nSecond 2nd line!") == "First line.\nSecond second line!"


# --- bounded work on hostile input ------------------------------------------------------------


@pytest.mark.parametrize(
    "unit",
    ["1", ".", "$", "[", "*", "_", "-", "1.", "1,", "1:", "1-", "1/", "a.", "@", "a@", "www.",
     "e.g. ", "**a", "[a](", "$1", "\u20ac1,", "-1", "1\u00b0", "|", "`", "\U0001f600"],
)  # fmt: skip
def test_it_finishes_on_4096_repeated_characters(unit):
    # each of these once sent a naive pattern into quadratic or exponential backtracking
    text = (unit * 4096)[:4096]

    assert isinstance(spoken(text), str)
    assert isinstance(spoken(text[:-1] + "x"), str)


def test_a_long_run_of_digits_is_read_digit_by_digit():
    result = spoken("9" * 4096)

    assert result.split() == ["nine"] * 4096


# Longer than the 4,300 digits int() converts (sys.int_max_str_digits).
RUN = "7" * 5000


@pytest.mark.parametrize(
    "raw",
    [
        RUN,
        "\uff17" * 5000,  # fullwidth digits
        "\u2077" * 5000,  # superscript sevens
        "\u2473" * 2500,  # circled twenty: each folds to "20"
        "\u0667" * 5000,  # Arabic-Indic digits
        "7" + ",777" * 1700,  # grouped thousands
        RUN + "th",
        "7" + ",777" * 1700 + "th",
        f"{RUN}.{RUN}",
        "." + RUN,
        "-" + RUN,
        RUN + "%",
        "in " + RUN,
        RUN + "0s",
        "$" + RUN,
        "$" + "\u2473" * 2500,
        "-$" + RUN,
        "$" + RUN + ".50",
        "$7" + ",777" * 1700 + ".25",
        "$" + RUN + "k",
        "\u00a3" + RUN,
        "\u00a5" + RUN,
        RUN + "\u20ac",
        RUN + "\u00a2",
        RUN + " km",
        "\u2473" * 2500 + "/2",
        "1/" + RUN,
        f"{RUN}/{RUN}",
        f"{RUN}\u2044{RUN}",
        f"{RUN}-{RUN}",
        f"{RUN}-{RUN}-{RUN}",
        f"{RUN}.{RUN}.{RUN}",
        f"{RUN},{RUN},7",
        RUN + ":30",
        "March " + RUN,
        RUN + " March 2024",
    ],
    ids=lambda raw: f"{raw[:12]}...{raw[-12:]}",
)
def test_a_run_of_digits_too_long_for_int_is_read_digit_by_digit(raw):
    result = spoken(raw)

    assert not any(char.isdigit() for char in result)
    assert result.count("seven") >= 4900 or result.count("twenty") + result.count("two") >= 2500
