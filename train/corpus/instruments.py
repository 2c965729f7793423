"""General MIDI instruments rendered from a SoundFont 2 file: notes, chords, rhythms and phrases.

`SoundFont` reads the presets, instruments and samples of an SF2 file and renders a note as the
sum of its zones' samples, resampled to the note's pitch, looped where the sample loops, under the
zone's volume envelope (delay, attack, hold, decay, sustain, release) and attenuation. Filters,
LFOs and modulators are ignored: enough for a recognisable timbre at 16 kHz mono, with no library
to install (the SF2 renderers on PyPI need PortAudio or a system FluidSynth to install or run).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Generator numbers (SoundFont 2.04, section 8.1.2) that the renderer uses.
START_OFS, END_OFS, LOOP_START_OFS, LOOP_END_OFS = 0, 1, 2, 3
START_COARSE, END_COARSE, LOOP_START_COARSE, LOOP_END_COARSE = 4, 12, 45, 50
DELAY, ATTACK, HOLD, DECAY, SUSTAIN, RELEASE = 33, 34, 35, 36, 37, 38
INSTRUMENT, KEY_RANGE, VEL_RANGE, ATTENUATION = 41, 43, 44, 48
COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES, SCALE_TUNING, ROOT_KEY = 51, 52, 53, 54, 56, 58
RANGES = (KEY_RANGE, VEL_RANGE)
DEFAULTS = {DELAY: -12000, ATTACK: -12000, HOLD: -12000, DECAY: -12000, RELEASE: -12000, SCALE_TUNING: 100,
            ROOT_KEY: -1, KEY_RANGE: (0, 127), VEL_RANGE: (0, 127)}


@dataclass
class Sample:
    start: int
    end: int
    loop_start: int
    loop_end: int
    rate: int
    pitch: int  # the MIDI key recorded
    correction: int  # cents


@dataclass
class Zone:
    gens: dict = field(default_factory=dict)

    def get(self, g: int, default=0):
        return self.gens.get(g, DEFAULTS.get(g, default))


def _chunks(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    out, pos = {}, start
    while pos + 8 <= end:
        cid, size = data[pos:pos + 4].decode("latin-1"), struct.unpack_from("<I", data, pos + 4)[0]
        if cid == "LIST":
            out[data[pos + 8:pos + 12].decode("latin-1")] = (pos + 12, pos + 8 + size)
        else:
            out[cid] = (pos + 8, pos + 8 + size)
        pos += 8 + size + (size & 1)
    return out


def _records(data: bytes, span: tuple[int, int], fmt: str) -> list[tuple]:
    size = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, data, p) for p in range(span[0], span[1] - size + 1, size)]


def _zones(bags: list[tuple], gens: list[tuple], first: int, last: int) -> list[Zone]:
    """Zones of bags [first, last): generator lists, ranges as (lo, hi), amounts signed."""
    zones = []
    for b in range(first, last):
        zone = Zone()
        for oper, amount in gens[bags[b][0]:bags[b + 1][0]]:
            if oper in RANGES:
                zone.gens[oper] = (amount & 0xFF, (amount >> 8) & 0xFF)
            else:
                zone.gens[oper] = amount - 0x10000 if amount >= 0x8000 and oper not in (INSTRUMENT, SAMPLE_ID) else amount
        zones.append(zone)
    return zones


def _split_global(zones: list[Zone], terminal: int) -> tuple[Zone, list[Zone]]:
    """The global zone (the first, if it lacks the terminal generator) and the others."""
    if zones and terminal not in zones[0].gens:
        return zones[0], [z for z in zones[1:] if terminal in z.gens]
    return Zone(), [z for z in zones if terminal in z.gens]


class SoundFont:
    """Presets by (bank, program) -> name; `render(bank, program, key, velocity, seconds, rate)`."""

    def __init__(self, path: str | Path):
        data = Path(path).read_bytes()
        if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
            raise ValueError(f"{path}: not a SoundFont 2 file")
        top = _chunks(data, 12, len(data))
        sdta, pdta = _chunks(data, *top["sdta"]), _chunks(data, *top["pdta"])
        lo, hi = sdta["smpl"]
        self.wave = np.frombuffer(data, dtype="<i2", count=(hi - lo) // 2, offset=lo).astype(np.float32) / 32768
        headers = _records(data, pdta["phdr"], "<20sHHHIII")
        pbag, pgen = _records(data, pdta["pbag"], "<HH"), _records(data, pdta["pgen"], "<HH")
        insts, ibag = _records(data, pdta["inst"], "<20sH"), _records(data, pdta["ibag"], "<HH")
        igen = _records(data, pdta["igen"], "<HH")
        self.samples = [Sample(s, e, ls, le, r, p, c if c < 128 else c - 256)
                        for _, s, e, ls, le, r, p, c, _, _ in _records(data, pdta["shdr"], "<20sIIIIIBBHH")]
        self.instruments = [_split_global(_zones(ibag, igen, insts[i][1], insts[i + 1][1]), SAMPLE_ID)
                            for i in range(len(insts) - 1)]
        self.presets: dict[tuple[int, int], tuple[str, Zone, list[Zone]]] = {}
        for i in range(len(headers) - 1):
            name, program, bank, bag = headers[i][0], headers[i][1], headers[i][2], headers[i][3]
            glob, zones = _split_global(_zones(pbag, pgen, bag, headers[i + 1][3]), INSTRUMENT)
            self.presets[(bank, program)] = (name.split(b"\0")[0].decode("latin-1").strip(), glob, zones)

    def name(self, bank: int, program: int) -> str:
        return self.presets[(bank, program)][0]

    def render(self, bank: int, program: int, key: int, velocity: int, seconds: float, rate: int,
               release: float = 0.3) -> np.ndarray:
        """float32 (round((seconds + release) * rate),): the note held `seconds`, then released."""
        n = round((seconds + release) * rate)
        out = np.zeros(n, dtype=np.float32)
        _, pglob, pzones = self.presets[(bank, program)]
        for pz in pzones:
            if not _covers(pz, pglob, key, velocity):
                continue
            iglob, izones = self.instruments[pz.gens[INSTRUMENT]]
            for iz in izones:
                if _covers(iz, iglob, key, velocity):
                    gens = {**iglob.gens, **iz.gens}
                    for g in (COARSE_TUNE, FINE_TUNE, ATTENUATION):  # preset levels add to instrument ones
                        gens[g] = gens.get(g, 0) + pz.gens.get(g, pglob.gens.get(g, 0))
                    out += self._voice(Zone(gens), key, velocity, seconds, n, rate)
        return out

    def _voice(self, zone: Zone, key: int, velocity: int, held: float, n: int, rate: int) -> np.ndarray:
        s = self.samples[zone.get(SAMPLE_ID)]
        start = s.start + zone.get(START_OFS) + 32768 * zone.get(START_COARSE)
        end = s.end + zone.get(END_OFS) + 32768 * zone.get(END_COARSE)
        loop_start = s.loop_start + zone.get(LOOP_START_OFS) + 32768 * zone.get(LOOP_START_COARSE)
        loop_end = s.loop_end + zone.get(LOOP_END_OFS) + 32768 * zone.get(LOOP_END_COARSE)
        root = zone.get(ROOT_KEY) if zone.get(ROOT_KEY) >= 0 else s.pitch
        cents = ((key - root) * zone.get(SCALE_TUNING) + 100 * zone.get(COARSE_TUNE) + zone.get(FINE_TUNE)
                 + s.correction)
        step = 2 ** (cents / 1200) * s.rate / rate  # source samples per output sample
        pos = np.arange(n) * step
        looping = zone.get(SAMPLE_MODES) & 1 and loop_end - loop_start > 1 and loop_start >= start
        if looping:
            first = loop_start - start
            length = loop_end - loop_start
            pos = np.where(pos < first, pos, first + np.mod(pos - first, length))
        idx = start + pos
        valid = idx < end - 1
        i0 = np.minimum(idx.astype(np.int64), end - 2)
        frac = (idx - i0).astype(np.float32)
        wave = (self.wave[i0] * (1 - frac) + self.wave[i0 + 1] * frac) * valid
        gain = 10 ** (-zone.get(ATTENUATION) / 200) * (velocity / 127) ** 2
        return wave * gain * envelope(zone, held, n, rate)


def _covers(zone: Zone, glob: Zone, key: int, velocity: int) -> bool:
    klo, khi = zone.gens.get(KEY_RANGE, glob.get(KEY_RANGE))
    vlo, vhi = zone.gens.get(VEL_RANGE, glob.get(VEL_RANGE))
    return klo <= key <= khi and vlo <= velocity <= vhi


def _seconds(timecents: int) -> float:
    return 2 ** (timecents / 1200)


def envelope(zone: Zone, held: float, n: int, rate: int) -> np.ndarray:
    """The volume envelope as gains per output sample: linear attack, exponential (dB-linear)
    decay to the sustain level, exponential release after `held` seconds."""
    t = np.arange(n) / rate
    delay, attack = _seconds(zone.get(DELAY)), _seconds(zone.get(ATTACK))
    hold, decay, release = _seconds(zone.get(HOLD)), _seconds(zone.get(DECAY)), _seconds(zone.get(RELEASE))
    sustain_db = -min(max(zone.get(SUSTAIN), 0), 1440) / 10
    u = t - delay
    db = np.where(u < attack + hold, 0.0, np.maximum(sustain_db, -100 * (u - attack - hold) / max(decay, 1e-3)))
    gain = np.where(u < 0, 0.0, np.where(u < attack, u / max(attack, 1e-6), 10 ** (db / 20)))
    after = np.maximum(t - held, 0)
    return (gain * np.where(t < held, 1.0, 10 ** (-100 * after / max(release, 1e-3) / 20))).astype(np.float32)


# --- what to render ----------------------------------------------------------------------------

# The General MIDI program names (bank 0), as a caption says them.
GM_PROGRAMS = (
    "grand piano", "bright piano", "electric grand piano", "honky-tonk piano", "electric piano",
    "electric piano", "harpsichord", "clavinet", "celesta", "glockenspiel", "music box", "vibraphone",
    "marimba", "xylophone", "tubular bells", "dulcimer", "drawbar organ", "percussive organ", "rock organ",
    "church organ", "reed organ", "accordion", "harmonica", "tango accordion", "nylon guitar", "steel guitar",
    "jazz guitar", "clean electric guitar", "muted electric guitar", "overdriven guitar", "distorted guitar",
    "guitar harmonics", "acoustic bass", "fingered bass", "picked bass", "fretless bass", "slap bass",
    "slap bass", "synth bass", "synth bass", "violin", "viola", "cello", "double bass", "tremolo strings",
    "pizzicato strings", "harp", "timpani", "string ensemble", "string ensemble", "synth strings",
    "synth strings", "choir", "voice", "synth choir", "orchestra hit", "trumpet", "trombone", "tuba",
    "muted trumpet", "french horn", "brass section", "synth brass", "synth brass", "soprano saxophone",
    "alto saxophone", "tenor saxophone", "baritone saxophone", "oboe", "english horn", "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan flute", "blown bottle", "shakuhachi", "whistle", "ocarina",
    "square synth lead", "sawtooth synth lead", "calliope", "chiff synth", "charang", "synth voice",
    "fifths synth", "bass and lead synth", "new age pad", "warm pad", "polysynth pad", "choir pad",
    "bowed pad", "metallic pad", "halo pad", "sweep pad", "rain effect", "soundtrack effect", "crystal effect",
    "atmosphere effect", "brightness effect", "goblins effect", "echoes effect", "sci-fi effect", "sitar",
    "banjo", "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai", "tinkle bell", "agogo",
    "steel drums", "woodblock", "taiko drum", "melodic tom", "synth drum", "reverse cymbal",
    "guitar fret noise", "breath noise", "seashore", "bird tweet", "telephone ring", "helicopter",
    "applause", "gunshot",
)
# The sound effects at the end of the GM table are captioned as what they imitate.
EFFECT_CAPTIONS = {120: "guitar fret noise", 121: "someone breathes", 122: "waves crash on a shore",
                   123: "a bird tweets", 124: "a telephone rings", 125: "a helicopter flies",
                   126: "people applaud", 127: "a gunshot"}
# GM percussion keys (bank 128) -> names.
GM_DRUMS = {35: "bass drum", 36: "kick drum", 37: "side stick", 38: "snare drum", 39: "hand clap",
            40: "electric snare", 41: "low floor tom", 42: "closed hi-hat", 43: "high floor tom",
            44: "pedal hi-hat", 45: "low tom", 46: "open hi-hat", 47: "low mid tom", 48: "high mid tom",
            49: "crash cymbal", 50: "high tom", 51: "ride cymbal", 52: "chinese cymbal", 53: "ride bell",
            54: "tambourine", 55: "splash cymbal", 56: "cowbell", 57: "crash cymbal", 58: "vibraslap",
            59: "ride cymbal", 60: "high bongo", 61: "low bongo", 62: "muted conga", 63: "open conga",
            64: "low conga", 65: "high timbale", 66: "low timbale", 67: "high agogo", 68: "low agogo",
            69: "cabasa", 70: "maracas", 71: "short whistle", 72: "long whistle", 73: "short guiro",
            74: "long guiro", 75: "claves", 76: "high woodblock", 77: "low woodblock", 78: "muted cuica",
            79: "open cuica", 80: "muted triangle", 81: "open triangle"}
DRUM_KIT = (128, 0)
CHORDS = {"major": (0, 4, 7), "minor": (0, 3, 7)}
REGISTERS = {"low": 45, "middle": 60, "high": 76}  # the MIDI key a phrase is built on


@dataclass(frozen=True)
class Render:
    """One thing to render: notes as (onset s, key, length s, velocity) on one preset."""

    bank: int
    program: int
    notes: tuple[tuple[float, int, float, int], ...]
    caption: str
    kind: str  # note, chord, rhythm, melody, drum-hit, drum-roll, drum-beat


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def instrument_renders(rng: np.random.Generator, available: set[tuple[int, int]]) -> list[Render]:
    """Notes, chords, rhythms and melodies for each GM program the font has, and hits, rolls and
    beats of each named drum."""
    out = []
    for program, name in enumerate(GM_PROGRAMS):
        if (0, program) not in available:
            continue
        if program in EFFECT_CAPTIONS:
            out.append(Render(0, program, ((0.0, 60, 1.5, 100),), EFFECT_CAPTIONS[program], "note"))
            continue
        register = ("low", "middle", "high")[int(rng.integers(3))]
        base = REGISTERS[register] + int(rng.integers(-3, 4))
        out.append(Render(0, program, ((0.0, base, 1.5, 100),), f"{_a(name)} plays a long {register} note", "note"))
        quality = ("major", "minor")[int(rng.integers(2))]
        out.append(Render(0, program, tuple((0.0, base + i, 1.5, 90) for i in CHORDS[quality]),
                          f"{_a(name)} plays a {quality} chord", "chord"))
        beat = float(rng.uniform(0.18, 0.3))
        out.append(Render(0, program, tuple((k * beat, base, beat * 0.5, 100) for k in range(int(1.8 / beat))),
                          f"{_a(name)} plays short repeated notes", "rhythm"))
        for tempo, beat in (("slow", 0.45), ("fast", 0.18)):
            scale = (0, 2, 4, 5, 7, 9, 11, 12)
            keys = [base + scale[int(i)] for i in rng.integers(len(scale), size=int(1.9 / beat))]
            out.append(Render(0, program, tuple((k * beat, key, beat * 0.9, 95) for k, key in enumerate(keys)),
                              f"{_a(name)} plays a {tempo} melody", "melody"))
    if DRUM_KIT in available:
        for key, name in GM_DRUMS.items():
            out.append(Render(*DRUM_KIT, ((0.0, key, 0.3, 110),), f"{_a(name)} hit", "drum-hit"))
            out.append(Render(*DRUM_KIT, tuple((k * 0.07, key, 0.05, 70 + 3 * k) for k in range(22)),
                              f"{_a(name)} roll", "drum-roll"))
        beat = ((0.0, 36), (0.5, 38), (1.0, 36), (1.25, 36), (1.5, 38))
        hats = tuple((k * 0.25, 42, 0.1, 80) for k in range(8))
        out.append(Render(*DRUM_KIT, tuple((t, k, 0.2, 110) for t, k in beat) + hats,
                          "a drum kit plays a rock beat", "drum-beat"))
    return out


def render(font: SoundFont, item: Render, rate: int, seconds: float) -> np.ndarray:
    """The notes of `item` mixed into `seconds` of audio, peak-normalised."""
    out = np.zeros(round(seconds * rate), dtype=np.float32)
    for onset, key, length, velocity in item.notes:
        start = round(onset * rate)
        if start >= len(out):
            continue
        note = font.render(item.bank, item.program, key, velocity, length, rate)[: len(out) - start]
        out[start:start + len(note)] += note
    peak = float(np.abs(out).max())
    return out * (0.8 / peak) if peak > 0 else out
