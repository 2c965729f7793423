"""Hand-written captions for the sources whose file names are titles or events rather than
sentences: gcompris-qt-data's activities, the freedesktop sound theme and OpenTTD's OpenSFX.

Each map goes from a file's stem (lower-case) to its caption; a file not in its map is left out
(counted as "no caption from its name"). The captions were written after reading each package's
own descriptions of the files (gcompris' READMEs and activity texts, OpenSFX's catalogue titles).
"""

from __future__ import annotations

import re

# gcompris-qt-data: the .rcc archives opened, and the captions of their sounds. The stems of
# memory-sound's files are its recordings' titles ("LRBark_1_LA_cut"): the LR/LA/cut tags and the
# numbers are dropped before looking them up (`gcompris_key`).
GCOMPRIS_ARCHIVES = ("explore_farm_animals", "explore_world_animals", "explore_world_music", "memory-sound",
                     "instruments", "canal_lock", "railroad", "traffic", "guessnumber", "money", "mining",
                     "melody", "clickgame")
GCOMPRIS = {
    # explore_farm_animals: each call has a photo of its animal
    "cat": "a cat meows", "chickens": "chickens cluck", "cow": "a cow moos", "dog": "a dog barks",
    "duck": "a duck quacks", "horse": "a horse neighs", "owl": "an owl hoots", "pig": "a pig grunts",
    "sheep": "a sheep bleats",
    # memory-sound
    "applauses": "an audience applauds", "bark": "a dog barks", "buddhist gong": "a gong rings",
    "door open": "a door opens", "factory noise": "factory machines clank", "fireballs": "fireballs whoosh",
    "frogs in pond during storm": "frogs croak in a pond during a storm", "heart beat": "a heart beats",
    "object falling": "an object falls to the floor", "rain in garden": "rain falls in a garden",
    "start and stop car engine": "a car engine starts and stops", "train slowing down": "a train slows down",
    "guitar melody": "a guitar plays a melody", "guitar son": "a guitar plays a note",
    # explore_world_music (its README names each recording)
    "africa": "african djembe drums play", "america": "a rock and roll song plays",
    "australia": "a didgeridoo drones", "ireland": "an irish fiddle tune plays",
    "italy": "an opera singer sings", "japan": "japanese taiko drums play",
    "mexico": "a mariachi band plays", "middleeast": "a middle eastern song plays",
    "beethoven": "an orchestra plays a beethoven symphony",
    # instruments
    "accordion": "an accordion plays", "banjo": "a banjo plays", "bongo": "bongo drums play",
    "castanets": "castanets click", "cello": "a cello plays", "clarinet": "a clarinet plays",
    "cymbal": "a cymbal crashes", "drum kit": "a drum kit plays", "electric guitar": "an electric guitar plays",
    "flute traversiere": "a flute plays", "guitar": "a guitar plays", "harmonica": "a harmonica plays",
    "harp": "a harp plays", "horn": "a french horn plays", "maracas": "maracas shake", "organ": "an organ plays",
    "piano": "a piano plays", "saxophone": "a saxophone plays", "snare drum": "a snare drum plays",
    "tambourine": "a tambourine jingles", "timpani": "timpani drums play", "triangle": "a triangle rings",
    "trombone": "a trombone plays", "trumpet": "a trumpet plays", "tuba": "a tuba plays", "violin": "a violin plays",
    # single sounds of other activities
    "door close": "a lock gate closes", "water fill": "water rushes into a lock", "train": "a train passes",
    "car": "a car drives past", "helicopter": "a helicopter flies", "money": "coins jingle",
    "pickaxe": "a pickaxe strikes rock", "xylofon son": "a xylophone plays a note", "knock": "someone knocks",
    "drip": "water drips", "bubble": "a bubble pops",
}
# gcompris' photos (.webp) by stem: the subject of each ("a photo of a cow"); others are left out.
GCOMPRIS_PHOTOS = {
    "cat": "cat", "chicken": "chicken", "cow": "cow", "dog": "dog", "duck": "duck", "horse": "horse", "owl": "owl",
    "pig": "pig", "sheep": "sheep", "bison": "bison", "chameleon": "chameleon", "crocodile": "crocodile",
    "giraffe": "giraffe", "hedgehog": "hedgehog", "jaguar": "jaguar", "kangaroo": "kangaroo", "koala": "koala",
    "lemur": "lemur", "moose": "moose", "narwhal": "narwhal", "panda": "panda", "polar bear": "polar bear",
    "scarlet macaw": "scarlet macaw parrot",
}


def gcompris_key(stem: str) -> str:
    """'LRFrogsInPondDuringStormLACut' -> 'frogs in pond during storm', 'guitar_son3' -> 'guitar son'."""
    stem = re.sub(r"^LR", "", stem)
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem)
    words = [w for w in re.split(r"[^A-Za-z]+", stem.lower()) if w and w not in {"la", "cut", "lacut"}]
    return " ".join(words)


# sound-theme-freedesktop: its event sounds ("stereo/<event>.oga"); the audio-channel ones are a
# voice naming a loudspeaker (speech rows). The test signal is left out.
FREEDESKTOP = {
    "alarm-clock-elapsed": "an alarm clock rings", "audio-volume-change": "a short pop",
    "bell": "a bell rings", "camera-shutter": "a camera shutter clicks", "complete": "a completion chime",
    "device-added": "a chime for a device plugged in", "device-removed": "a chime for a device unplugged",
    "dialog-information": "an information chime", "dialog-warning": "a warning sound",
    "message-new-instant": "a new message chime", "message": "a message notification sound",
    "phone-incoming-call": "a phone rings", "phone-outgoing-busy": "a phone busy signal",
    "phone-outgoing-calling": "a phone ringing tone", "service-login": "a login chime",
    "service-logout": "a logout chime", "suspend-error": "an error sound", "trash-empty": "paper rustles into the trash",
}
FREEDESKTOP_SPOKEN = "audio-channel-"  # "audio-channel-front-left" -> a voice says 'front left'


def freedesktop_caption(stem: str) -> tuple[str | None, str]:
    """(caption, kind) of a freedesktop theme sound."""
    if stem.startswith(FREEDESKTOP_SPOKEN):
        return f"a voice says '{stem.removeprefix(FREEDESKTOP_SPOKEN).replace('-', ' ')}'", "speech"
    return FREEDESKTOP.get(stem), "sound"


# openttd-opensfx: the catalogue's titles (lower-case) -> captions. Left out: the game's jingles
# (good/bad year), "splat" sounds named by what is built, the empty entries and the toyland
# factory mixes whose titles say nothing of the sound.
OPENSFX = {
    "factory whistle": "a factory whistle blows", "steam train station departure": "a steam train whistles and leaves",
    "steam engine going in tunnel": "a steam train whistles into a tunnel", "ship horn": "a ship's horn blows",
    "ferry horn": "a ferry's horn blows", "propeller plane start": "a propeller plane starts up",
    "early jet take off": "a jet plane takes off",
    "diesel/electric train station departure": "a train horn sounds as a train leaves",
    "mining machinery": "mining machinery rumbles", "electric sparking": "electric sparks crackle",
    "steam (of steam engine)": "a steam engine hisses", "level crossing": "a level crossing bell rings",
    "road vehicle breakdown": "a truck breaks down with a clank", "train/ship breakdown": "metal clanks and rattles",
    "crash": "a crash", "explosion": "an explosion", "big crash": "a loud crash", "cash till": "a cash register rings",
    "beep": "a short beep", "morse": "morse code beeps", "plane wheels touching ground": "plane tyres screech on landing",
    "helicopter": "a helicopter flies", "truck/old bus start, pull away": "a truck starts and pulls away",
    "truck/old bus start, pull away with horn": "a truck honks and pulls away",
    "modern bus start": "a bus pulls away", "old bus start": "an old bus starts and pulls away",
    "applause": "an audience applauds", "oooh sound": "a crowd says 'oooh'", "jackhammer": "a jackhammer pounds",
    "modern car horn": "a car horn honks", "sheep": "sheep bleat in a field", "cow": "a cow moos",
    "horse": "a horse neighs", "building bridge": "a hammer strikes metal", "sawmill": "a circular saw cuts wood",
    "toyland: sugar mine (1)": "a shaker rattles", "toyland: sugar mine (2)": "a shaker rattles",
    "toyland: bubble generated": "water bubbles", "toyland: bubble plop": "a bubble pops",
    "toyland: bubble slurped": "a cartoon slurp", "toyland: plastic mine": "water bubbles and gurgles",
    "wind": "wind blows", "heavy wind": "a strong wind blows", "toyland: road vehicle breakdown": "a cartoon crash",
    "lumber mill: crashing tree": "a tree crashes to the ground", "lumber mill: falling tree": "a tree is cut down",
    "lumber mill: chainsaw": "a chainsaw cuts wood", "mach 1+ jet take off": "a fighter jet takes off",
    "modern jet take off": "fighter jets roar past", "maglev train station departure": "a metro train leaves",
    "tropical: bird (1)": "a tropical bird calls", "tropical: bird (2)": "a tropical bird calls",
    "tropical: lion roar": "a lion roars", "tropical: monkeys": "monkeys screech",
    "toyland: propeller plane take off": "a propeller plane takes off",
    "monorail train station departure": "a train passes by",
}
