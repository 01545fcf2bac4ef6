"""Make text an LLM wrote sound right when spoken.

Markdown (emphasis, headings, bullets, links, tables, code) is reduced to its
words, emoji and stray symbols are dropped, and numbers with units, money,
times and common abbreviations are spelled out where espeak-ng would read them
oddly (``$21.50``, ``3:30 pm``, ``21°C``, ``Dr.``). Plain numbers, ordinals,
percentages and thousands separators are left to espeak-ng, which reads them well; but a large
number, or amount of money, is written in groups with their scale words (:func:`number_groups`)
before the text is cut into pieces, so that a piece can end inside it.
"""

from __future__ import annotations

import re
import unicodedata

_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`]*)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"(?:https?://|www\.)\S+?(?=[.,!?;:)]?(?:\s|$))")
_TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$", re.MULTILINE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*(.*?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+(.*)$", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>+\s?", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")

_MONEY_SCALES = ("million", "billion", "thousand", "k")  # "$2 million", "$5k"
_MONEY = re.compile(r"([$€£])\s?(\d{1,3}(?:,\d{3})*|\d+)(?:\.(\d{1,2}))?(\s?(?:" + "|".join(_MONEY_SCALES) + r")\b)?")
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence")}  # fmt: skip
_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s*([ap])\.?\s?m\b(?:\.(?=\s+(?-i:[a-z])))?)?", re.IGNORECASE)
_TEMPERATURE = re.compile(r"(-?\d+(?:\.\d+)?)\s*°\s*([CF])?\b")
_UNITS = {
    "km/h": "kilometers per hour", "mph": "miles per hour", "km": "kilometers", "kg": "kilograms",
    "cm": "centimeters", "mm": "millimeters", "mi": "miles", "lbs": "pounds", "lb": "pounds",
    "kWh": "kilowatt hours", "kW": "kilowatts", "W": "watts", "ml": "milliliters", "l": "liters",
    "h": "hours", "min": "minutes", "sec": "seconds", "ms": "milliseconds",
}  # fmt: skip
_UNIT = re.compile(r"(\d)\s?(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")\b")
_ABBREVIATIONS = {
    "Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Prof.": "Professor",
    "Jr.": "Junior", "Sr.": "Senior", "vs.": "versus", "etc.": "et cetera", "approx.": "approximately",
    "e.g.": "for example", "i.e.": "that is", "No.": "number", "Mt.": "Mount", "Ave.": "Avenue",
    "min.": "minutes", "max.": "maximum",
}  # fmt: skip
_ABBREVIATION = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")(?=\s|$)"
)
_SAINT_OR_STREET = re.compile(r"\bSt\.(?=\s+([A-Z])?)")
# A number with thousands separators, complete (what follows is neither a digit nor a separator), not money.
_GROUPED_NUMBER = re.compile(r"(?<![\d,.$€£])(?<![$€£]\s)(\d{1,3}(?:,\d{3})+)(?=[^\d,]|,\D)")
# An amount of money with thousands separators, complete with its cents if any ("$1,250.5" may go on), not
# "$1,500k" or "$1,000s" (spelled later as they are).
_GROUPED_MONEY = re.compile(r"(?<![\w$€£])([$€£])\s?(\d{1,3}(?:,\d{3})+)(?:\.(\d{1,2}))?(?=[^\w,.]|[,.]\D)")
_NEXT_WORD = re.compile(r"\s*([a-zA-Z]*)(\W?)")
_SCALES = ("", "thousand", "million", "billion", "trillion")


def _money(match: re.Match[str]) -> str:
    symbol, whole, cents, scale = match.groups()
    one, many, _cent, _cents_word = _CURRENCY[symbol]
    amount = whole.replace(",", "")
    if scale:
        scale = scale.strip()
        scale = "thousand" if scale == "k" else scale
        number = f"{amount}.{cents}" if cents else amount
        return f"{number} {scale} {many}"
    return f"{amount} {one if amount == '1' else many}{_cents(symbol, cents)}"


def _cents(symbol: str, cents: str | None) -> str:
    """The cents of ``symbol``'s currency, after the amount (".5": " 50 cents"); nothing for none or ".00"."""
    value = int(cents.ljust(2, "0")) if cents else 0
    if not value:
        return ""
    _one, _many, cent, cents_word = _CURRENCY[symbol]
    return f" {value} {cent if value == 1 else cents_word}"


def _time(match: re.Match[str]) -> str:
    hour, minute, half = match.groups()
    suffix = f" {half.upper()}M" if half else ""
    if minute == "00":
        return f"{int(hour)}{suffix}" if half else f"{int(hour)} o'clock"
    if minute.startswith("0"):
        return f"{int(hour)} oh {int(minute)}{suffix}"
    return f"{int(hour)} {minute}{suffix}"


def _temperature(match: re.Match[str]) -> str:
    value, scale = match.groups()
    word = "degree" if value in ("1", "-1") else "degrees"
    name = {"C": " Celsius", "F": " Fahrenheit"}.get(scale or "", "")
    return f"{value} {word}{name}"


def number_groups(text: str, british: bool = False) -> str:
    """Large numbers written as their groups and scale words: "2,192,080" becomes "2 million 192 thousand 80".

    espeak-ng says both the same (the same phonemes), but to the splitter the first is one word
    that takes seven to say: a piece could not end inside it, and after a short first piece the
    listener heard 1.5 s of silence while "about 2,192,080 miles away" was made. Only numbers whose
    end has arrived are rewritten (text streams in fragments: "2,192" may go on). In British English
    espeak-ng says "thousand and eighty": there the last two groups stay together when the last is
    under a hundred, and the whole number when they cannot. Money is written the way it is said, its
    currency after the amount: "$1,250,000.50" becomes "1 million 250 thousand dollars 50 cents".
    """
    text = _GROUPED_MONEY.sub(lambda match: _money_in_groups(match, british) or match.group(0), text)
    return _GROUPED_NUMBER.sub(lambda match: _in_groups(match.group(1), british), text)


def _in_groups(number: str, british: bool) -> str:
    """``number`` ("2,192,080") in its groups and scale words, or as it is when that would change how it is said."""
    values = [int(group) for group in number.split(",")]
    if len(values) > len(_SCALES):
        return number
    words = [f"{value} {_SCALES[len(values) - 1 - index]}".strip() for index, value in enumerate(values) if value]
    if british and 0 < values[-1] < 100:
        if values[-2] == 0:
            return number
        words[-2:] = [f"{values[-2]},{values[-1]:03d}"]
    return " ".join(words) or "0"


def _money_in_groups(match: re.Match[str], british: bool) -> str | None:
    """The amount in groups with its currency after it; None while a scale word may follow ("$1,500 mil")."""
    after = _NEXT_WORD.match(match.string, match.end())
    assert after is not None  # (it matches nothing, too)
    word, ended = after.group(1).lower(), after.group(2)
    if any(scale.startswith(word) for scale in _MONEY_SCALES) and (word in _MONEY_SCALES or not ended):
        return None  # "$1,500 million": spelled later, as the number it says
    symbol, whole, cents = match.groups()
    return f"{_in_groups(whole, british)} {_CURRENCY[symbol][1]}{_cents(symbol, cents)}"


def _sentence(text: str) -> str:
    """A heading or list item becomes its own sentence."""
    text = text.strip()
    return text if not text or text[-1] in ".!?:;," else text + "."


def _keep_char(char: str) -> bool:
    category = unicodedata.category(char)
    if char == "°":
        return True
    if category in ("So", "Sk", "Cs", "Co", "Cn", "Mn", "Me") or char in "\u200d\ufe0f\ufe0e":
        return False
    return not (category.startswith("C") and char not in "\n\t")


def clean_markup(text: str) -> str:
    """Strip markdown, emoji and symbols that should not be read out (works on fragments too)."""
    text = _CODE_FENCE.sub(" ", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _TABLE_RULE.sub("\n", text)
    text = _TABLE_ROW.sub(lambda m: _sentence(", ".join(c.strip() for c in m.group(1).split("|") if c.strip())), text)
    text = _RULE.sub("", text)
    text = _HEADING.sub(lambda m: _sentence(m.group(1)), text)
    text = _BULLET.sub(lambda m: _sentence(m.group(1)), text)
    text = _QUOTE.sub("", text)
    for _ in range(2):  # nested emphasis: ***x***, **_x_**
        text = _EMPHASIS.sub(r"\2", text)
    text = text.replace("|", ", ")
    text = "".join(char for char in text if _keep_char(char))
    return re.sub(r"[*_~#^<>{}\[\]\\=+]+", " ", text)


def spoken(text: str) -> str:
    """The text as it should be spoken: markup removed, money/times/units/abbreviations spelled out."""
    text = re.sub(r"(\d)\s*[*×]\s*(?=\d)", r"\1 times ", text)
    text = re.sub(r"(?<=[\w)])\s*=\s*(?=[\w(])", " equals ", text)
    text = clean_markup(text)
    text = _MONEY.sub(_money, text)
    text = _TIME.sub(_time, text)
    text = _TEMPERATURE.sub(_temperature, text)
    text = _UNIT.sub(lambda m: f"{m.group(1)} {_UNITS[m.group(2)]}", text)
    text = _SAINT_OR_STREET.sub(lambda m: "Saint" if m.group(1) else "Street", text)
    text = _ABBREVIATION.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = text.replace("&", " and ").replace("%", " percent").replace("°", " degrees")
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s+([.,!?;:])", r"\1", text).strip()
