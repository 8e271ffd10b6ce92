"""Plain-text views of encodings that attackers use to slip instructions past pattern matching.

"Ignore all the instructions you got before" in Morse code, leetspeak ("91v3 m3 1n572uc710n5") or
base64 reads as noise to a regex. Each decoder here finds a run of its encoding and returns what it
says; `normalize` appends those views to the normalized text, so the attack patterns, the structure
features and the wording model see the instruction as well as its disguise (the sentence embedder
reads the raw text's chunks and does not). A decoder that finds nothing returns nothing: ordinary
text is analysed unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re

_MORSE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g", "....": "h",
    "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n", "---": "o", ".--.": "p",
    "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u", "...-": "v", ".--": "w", "-..-": "x",
    "-.--": "y", "--..": "z", "-----": "0", ".----": "1", "..---": "2", "...--": "3", "....-": "4",
    ".....": "5", "-....": "6", "--...": "7", "---..": "8", "----.": "9", ".-.-.-": ".", "--..--": ",",
    "..--..": "?", "-.-.--": "!", ".----.": "'", "-..-.": "/", "---...": ":",
}  # fmt: skip
# At least ten Morse letters in a row, separated by spaces (words by "/" or wider gaps).
_MORSE_RUN = re.compile(r"(?<![\w.\-])(?:[.\-]{1,6}(?:[ \t]+/?[ \t]*|[ \t]*/[ \t]*)){9,}[.\-]{1,6}(?![\w.\-])")
_MORSE_WORD_GAP = re.compile(r"[ \t]*/[ \t]*|[ \t]{2,}")

# Digits standing for letters, as leetspeak writes them.
_LEET = str.maketrans("0123456789@$", "oizeasgtbgas")
_LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$]*[a-zA-Z])(?=[\w@$]*[0-9@$])[\w@$]{2,}(?![\w@$])")
_NUMBER_WORD = re.compile(r"(?<![\w@$])[0-9]{1,2}(?![\w@$])")
_ANY_WORD = re.compile(r"[\w@$]+")
_LINE = re.compile(r"[^\n.!?]+")
MIN_LEET_WORDS = 3
MIN_LEET_SHARE = 0.25

_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")


def morse(text: str) -> list[str]:
    out = []
    for m in _MORSE_RUN.finditer(text):
        words = []
        for word in _MORSE_WORD_GAP.split(m.group(0).strip()):
            letters = [_MORSE.get(code) for code in word.split()]
            if letters and all(letters):
                words.append("".join(letters))  # type: ignore[arg-type]
        if words:
            out.append(" ".join(words))
    return out


def leet(text: str) -> list[str]:
    """Sentences or lines written mostly in digit-spelled words, read as letters (a "b2b" or an "mp3"
    in a sentence is a name, not a disguise)."""
    out = []
    for m in _LINE.finditer(text):
        line = m.group(0)
        n = len(_LEET_WORD.findall(line))
        if n >= MIN_LEET_WORDS and n >= MIN_LEET_SHARE * len(_ANY_WORD.findall(line)):
            decoded = _LEET_WORD.sub(lambda w: w.group(0).translate(_LEET), line)
            out.append(_NUMBER_WORD.sub(lambda w: w.group(0).translate(_LEET), decoded).strip())
    return out


def base64_runs(text: str) -> list[str]:
    out = []
    for m in _B64_RUN.finditer(text):
        run = m.group(0)
        if run.isalpha() or run.isdigit():  # a long word or number, not an encoding
            continue
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
            plain = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if plain and sum(c.isprintable() or c.isspace() for c in plain) / len(plain) > 0.95 and " " in plain:
            out.append(plain)
    return out


def decoded_views(text: str) -> list[str]:
    return morse(text) + leet(text) + base64_runs(text)
