"""Speech: espeak-ng saying words, numbers, letters and sentences in many voices, and the recorded
voices of the packages (hedgewars voice packs, whose file names are the phrases; klettres letters).

espeak-ng runs from the cache (`dpkg-deb -x` of it and of the libraries this system lacks), with
LD_LIBRARY_PATH and ESPEAK_DATA_PATH pointing there; nothing is installed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.corpus.captions import words

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS_AND_LETTERS = [(c, "letter") for c in LETTERS] + [(d, "number") for d in DIGITS]  # the 36-way speech eval
WORDS = ("hello", "goodbye", "yes", "no", "please", "thank you", "stop", "go", "help", "water", "house",
         "music", "morning", "night", "left", "right", "up", "down", "open", "close", "red", "green", "blue",
         "yellow", "black", "white", "big", "small", "hot", "cold", "fast", "slow", "mother", "father",
         "friend", "window", "door", "table", "chair", "book", "phone", "coffee", "bread", "apple", "orange",
         "banana", "car", "train", "boat", "plane", "bicycle", "street", "city", "garden", "flower", "tree",
         "river", "mountain", "rain", "snow", "sun", "moon", "star", "fire", "money", "time", "today",
         "tomorrow", "yesterday", "welcome", "sorry", "excuse me", "good night", "good morning", "attention",
         "danger", "warning", "ready", "finished", "again", "listen", "look", "wait", "come here", "let's go")
SENTENCES = ("leave me alone", "where is the station", "i would like a cup of tea", "the door is open",
             "please close the window", "it is raining today", "turn left at the corner", "what time is it",
             "i am very hungry", "the train is late", "see you tomorrow", "nice to meet you",
             "how are you today", "the music is too loud", "call me later", "the shop is closed",
             "my name is sam", "this is the end", "we are going home", "the water is cold",
             "watch out", "follow me", "keep calm and carry on", "happy birthday", "the sky is blue",
             "i like to read books", "open the door please", "the car is red", "where are my keys",
             "the meeting starts at nine")
# espeak-ng English accents and voice variants; HELD_OUT_VARIANTS are never used for training.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f5", "klatt", "Alex", "Mike",
                  "Annie", "linda", "robert", "grandma", "edward", "belinda", "john")
HELD_OUT_VARIANTS = ("f4", "m7", "steph")
TRAIN_VOICES_PER_ITEM = 6
DRILL_RENDITIONS = 2  # the 36 digits and letters again, in every training voice, this many times each


def number_words(n: int) -> str:
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return TEENS[n - 10]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + DIGITS[n % 10])
    return "one hundred"


def digit_or_letter_caption(item: str) -> str:
    """The caption of the 36-way eval: 'a voice says the number seven' / '... the letter k'."""
    return f"a voice says the letter {item}" if item in LETTERS else f"a voice says the number {item}"


@dataclass(frozen=True)
class Utterance:
    text: str  # what espeak-ng is given
    caption: str
    variant: str
    accent: str
    speed: int  # words per minute
    pitch: int  # 0-99
    kind: str  # letter, number, word, sentence


class Espeak:
    """espeak-ng from extracted package roots: `say(text, voice, speed, pitch)` -> (wave, rate)."""

    def __init__(self, roots: dict[str, Path], library_path: str):
        self.binary = roots["espeak-ng"] / "usr/bin/espeak-ng"
        data = next((roots["espeak-ng-data"] / "usr/lib").glob("*/espeak-ng-data"))
        self.data_dir = data
        self.env = {**os.environ, "LD_LIBRARY_PATH": library_path, "ESPEAK_DATA_PATH": str(data)}

    def gender(self, variant: str) -> str:
        path = self.data_dir / "voices" / "!v" / variant
        text = path.read_text(errors="replace") if path.is_file() else ""
        return "woman" if "gender female" in text or variant.startswith("f") else "man"

    def say(self, u: Utterance) -> tuple[np.ndarray, int]:
        from vlsa.media import read_audio  # one decoder for every sound of the corpus

        with tempfile.NamedTemporaryFile(suffix=".wav") as out:
            done = subprocess.run([str(self.binary), "-v", f"{u.accent}+{u.variant}", "-s", str(u.speed),
                                   "-p", str(u.pitch), "-w", out.name, u.text], env=self.env,
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"espeak-ng {u.accent}+{u.variant}: {done.stderr.strip()[-200:]}")
            return read_audio(out.name, sample_rate=16000).numpy(), 16000


def training_utterances(rng: np.random.Generator, gender) -> list[Utterance]:
    """Each letter, number (0-100), word and sentence in TRAIN_VOICES_PER_ITEM random training voices."""
    items = [(c, digit_or_letter_caption(c), "letter") for c in LETTERS]
    items += [(number_words(n), digit_or_letter_caption(number_words(n)) if n < 10
               else f"a voice says the number {number_words(n)}", "number") for n in range(101)]
    items += [(w, None, "word") for w in WORDS] + [(s, None, "sentence") for s in SENTENCES]
    out = []
    for text, caption, kind in items:
        for k in rng.choice(len(TRAIN_VARIANTS), TRAIN_VOICES_PER_ITEM, replace=False):
            variant = TRAIN_VARIANTS[int(k)]
            said = caption or f"a {gender(variant)} says '{text}'"
            out.append(Utterance(text, said, variant, ACCENTS[int(rng.integers(len(ACCENTS)))],
                                 int(rng.integers(120, 230)), int(rng.integers(25, 75)), kind))
    return out


def drill_utterances(rng: np.random.Generator) -> list[Utterance]:
    """The 36 digits and letters in every training voice, DRILL_RENDITIONS times each at a random
    accent, speed and pitch: heard in six voices each, they were not recognised in a new voice
    (docs/REAL_MEDIA.md). A generator of their own, so the other rows stay as they were."""
    return [Utterance(text, digit_or_letter_caption(text), variant, ACCENTS[int(rng.integers(len(ACCENTS)))],
                      int(rng.integers(120, 230)), int(rng.integers(25, 75)), kind)
            for text, kind in DIGITS_AND_LETTERS for variant in TRAIN_VARIANTS for _ in range(DRILL_RENDITIONS)]


def held_out_utterances() -> list[Utterance]:
    """The 36 digits and letters in each held-out voice, at espeak-ng's default speed and pitch."""
    return [Utterance(text, digit_or_letter_caption(text), variant, "en-us", 170, 50, kind)
            for variant in HELD_OUT_VARIANTS for text, kind in DIGITS_AND_LETTERS]


# --- recorded voices -----------------------------------------------------------------------------

HEDGEWARS_SPEAKERS = {"British": "a british man", "Classic": "a man", "Default": "a man",
                      "HillBilly": "a hillbilly", "Mobster": "a mobster", "Pirate": "a pirate",
                      "Robot": "a robot", "Russian": "a man with a russian accent", "Singer": "a singer",
                      "Surfer": "a surfer"}  # the English packs; the others speak other languages
HEDGEWARS_SOUNDS = {"hmm": "hums 'hmm'", "laugh": "laughs", "ooff": "grunts in pain", "ouch": "cries 'ouch'",
                    "ow": "cries out in pain", "poison cough": "coughs", "poison moan": "moans",
                    "jump": "grunts as he jumps", "nooo": "cries 'nooo'"}
HEDGEWARS_PHRASES = {"byebye": "bye bye", "comeonthen": "come on then", "cutitout": "cut it out",
                     "enemydown": "enemy down", "firepunch": "fire punch", "firstblood": "first blood",
                     "flyaway": "fly away", "gonnagetyou": "gonna get you", "illgetyou": "i'll get you",
                     "justyouwait": "just you wait", "leavemealone": "leave me alone", "ohdear": "oh dear",
                     "runaway": "run away", "sameteam": "same team", "solong": "so long",
                     "takecover": "take cover", "thisoneismine": "this one is mine", "uh oh": "uh-oh",
                     "watchit": "watch it", "watchthis": "watch this", "whatthe": "what the",
                     "yessir": "yes sir", "youllregretthat": "you'll regret that"}


def hedgewars_caption(pack: str, stem: str) -> str | None:
    """'Pirate', 'Leavemealone' -> "a pirate says 'leave me alone'"; None for non-English packs."""
    speaker = HEDGEWARS_SPEAKERS.get(pack)
    if speaker is None:
        return None
    key = " ".join(words(stem))
    if key in HEDGEWARS_SOUNDS:
        return f"{speaker} {HEDGEWARS_SOUNDS[key]}"
    phrase = HEDGEWARS_PHRASES.get(key.replace(" ", ""), key)
    return f"{speaker} {'sings' if pack == 'Singer' else 'says'} '{phrase}'"


KLETTRES_LANGUAGES = {"cs": "czech", "da": "danish", "de": "german", "en": "english", "en_GB": "english",
                      "es": "spanish", "fr": "french", "hu": "hungarian", "it": "italian", "lt": "lithuanian",
                      "nb": "norwegian", "nds": "low german", "nl": "dutch", "pt_BR": "portuguese"}


def klettres_caption(language: str, group: str, stem: str) -> str | None:
    """'de', 'alpha', 'e' -> 'a voice says the letter e in german'; syllables likewise. Languages
    written in other scripts are left out: their file names are not the letters said."""
    name = KLETTRES_LANGUAGES.get(language)
    said = stem.split("-")[0].lower()
    if name is None or not said.isalpha():
        return None
    if group == "alpha":
        return f"a voice says the letter {said} in {name}"
    return f"a voice says the syllable '{said}' in {name}" if group == "syllab" else None
