"""More everyday sounds (issue 32): the game, drum-kit and flight-simulator packages of SOURCES.md's
2026-12-06 list, each captioned from a hand map of its file names.

Their names are short and often ambiguous alone ("large" is an explosion in one folder and a
cannon shot in another, "ack" is an animal's call or a soldier's "yes sir"), so every kept sound is
written here after reading the package's listing; a file not in its package's map is left out and
counted. A name is looked up as `key(folders, stem)`: its words, lower-case, digits, velocity
layers ("Snare-Hard") and file-number suffixes dropped, first with its folder in front
("explosions large"), then alone ("large").

openclonk-data's sounds are inside its C4Group archive `Sound.ocg` (read by
train/corpus/archives.py); its `authors.txt` licenses them CC-BY-3.0 and credits each.

Looked through and not used: blinken (four numbered tones and a jingle), colobot-common-sounds
(numbered "sound042"), warzone2100-data (coded names inside `.wz` archives).
"""

from __future__ import annotations

from train.corpus.captions import words
from train.corpus.fetch import Package

FG = "./usr/share/games/flightgear"
MEGAGLEST = "./usr/share/games/megaglest"
OPENCLONK_SOUNDS = "./usr/share/games/openclonk/Sound.ocg"
MORE_PACKAGES = (
    Package("supertux-data", ("./usr/share/games/supertux2/sounds/*",)),
    Package("freedroidrpg-data", ("./usr/share/freedroidrpg/data/sound/effects/*",)),
    Package("frozen-bubble-data", ("./usr/share/games/frozen-bubble/snd/*",)),
    Package("extremetuxracer-data", ("./usr/share/games/etr/sounds/*",)),
    Package("warmux-data", ("./usr/share/games/warmux/sound/default/*",)),
    Package("scorched3d-data", ("./usr/share/games/scorched3d/data/globalmods/*/data/wav/*",)),
    Package("7kaa-data", ("./usr/share/games/7kaa/SOUND/*",)),
    Package("megaglest-data", (f"{MEGAGLEST}/techs/megapack/commondata/sounds/*",
                               f"{MEGAGLEST}/techs/megapack/factions/*/units/*/sounds/*",
                               f"{MEGAGLEST}/tilesets/*/sounds/*", f"{MEGAGLEST}/data/core/water_sounds/*")),
    Package("simutrans-pak64", ("./usr/share/games/simutrans/pak/sound/*",)),
    Package("hydrogen-data", ("./usr/share/hydrogen/data/drumkits/*",)),
    Package("flightgear-data-base", (f"{FG}/Sounds/*", f"{FG}/Aircraft/c172p/Sounds/*")),
    Package("kanagram", ("./usr/share/kanagram/ui/sounds/chalk.ogg",)),  # its .wav twin is the same sound
    Package("openclonk-data", (OPENCLONK_SOUNDS,), unpack=(OPENCLONK_SOUNDS.removeprefix("./"),)),
)
# The licence of a package's sounds where its copyright file does not say it in its own words
# (the build's licences.json and every row of the package record it):
# openclonk-data's names the engine's ISC licence and says "some files of the game content" are
# CC-BY-3.0; Sound.ocg's authors.txt: "If not stated otherwise, the sound effects are licensed
# under the CC Attribution 3.0 license", and none states otherwise.
LICENCES = {"openclonk-data": "CC-BY-3.0"}
# Words of a name that say how hard a drum was hit or which take it is, not what sounds.
LAYERS = {"hard", "hardest", "med", "soft", "softest", "sound", "long", "short", "b", "c"}

_EXPLOSION, _RAIN, _THUNDER, _WIND = "an explosion", "rain falls", "thunder rumbles", "wind blows"
CAPTIONS: dict[str, dict[str, str]] = {
    "supertux-data": {
        "brick": "a brick breaks", "cracking": "ice cracks", "crystallo shatter": "a crystal shatters",
        "explosion": _EXPLOSION, "fireworks": "fireworks bang", "fizz": "something fizzes", "flame": "a flame whooshes",
        "gulp": "someone gulps", "icecrash": "ice shatters", "kick": "a kick", "lava": "lava bubbles",
        "lightning": "lightning crackles", "phone": "a phone rings", "pop": "a pop", "rain": _RAIN,
        "savebell": "a bell rings", "savebell low": "a low bell rings", "sizzle": "something sizzles",
        "splash": "a splash of water", "splat": "a splat", "squish": "a squish", "stomp": "a stomp",
        "thud": "a thud", "thunder": _THUNDER, "ticking": "a clock ticks", "trampoline": "a spring boings",
        "turnkey": "a key turns in a lock", "waterfall": "a waterfall roars", "yeti roar": "a yeti roars",
        "grunts": "someone grunts",
    },
    "freedroidrpg-data": {
        "blast": _EXPLOSION, "camera takes picture": "a camera shutter clicks", "glass break": "glass breaks",
        "open chest": "a chest opens", "drop book": "a book drops", "drop potion": "a bottle drops",
        "drop sword": "a sword drops", "swing then hit": "a sword swings and hits",
        "swing then nohit": "a sword swings through the air", "tux footstep": "a footstep",
        "sword": "a sword swings through the air", "laser rifle": "a laser gun fires", "military": "a gun fires",
        "icant carry any more": "a voice says 'i can't carry any more'",
        "this item requires both hands": "a voice says 'this item requires both hands'",
        "cant repair that": "a voice says 'i can't repair that'",
    },
    "frozen-bubble-data": {"applause": "an audience applauds", "snore": "someone snores",
                           "typewriter": "a typewriter types"},
    "extremetuxracer-data": {
        "grass slide": "a sled slides on grass", "ice slide": "a sled slides on ice",
        "leaves slide": "a sled slides through leaves", "mud slide": "a sled slides through mud",
        "rock slide": "a sled scrapes over rock", "snow slide": "a sled slides on snow", "tree hit": "a sled hits a tree",
    },
    "warmux-data": {
        "box falling": "a box falls", "box hitting ground": "a box hits the ground", "step": "a footstep",
        "aircraft flying": "an aircraft flies over", "aircraft bomb falling": "a bomb whistles as it falls",
        "airhammer used": "a jackhammer pounds", "anvil fall": "an anvil falls", "anvil collision": "an anvil clangs",
        "baseball": "a baseball bat hits a ball", "blowtorch": "a blowtorch hisses", "dynamite exp": "dynamite explodes",
        "dynamite fuze": "a fuse fizzes", "explosion": _EXPLOSION, "flame": "a flame whooshes",
        "grenade bounce": "a grenade bounces", "gun": "a gun fires", "jetpack": "a jetpack roars",
        "m": "a rifle fires", "ricoche": "a bullet ricochets", "rocket flying": "a rocket flies",
        "shotgun": "a shotgun fires", "slap": "a slap", "embers": "embers crackle",
    },
    "scorched3d-data": {
        "explosions bees": "bees buzz", "explosions exp": _EXPLOSION, "explosions lightning": "lightning strikes",
        "explosions lightningbolt": "a lightning bolt strikes", "explosions quake": "an earthquake rumbles",
        "explosions tank": "a tank explodes", "explosions thud": "a thud", "explosions thunder": _THUNDER,
        "explosions crunch": "a crunch", "explosions large": "a large explosion", "explosions medium": _EXPLOSION,
        "explosions small": "a small explosion", "explosions xlarge": "a huge explosion",
        "carhorn": "a car horn honks", "cessna": "a small propeller plane flies", "cheeringloop": "a crowd cheers",
        "citysounds": "the sound of a busy city street", "cows": "cows moo", "dog": "a dog barks",
        "factoryloop": "factory machines clank", "firetruck": "a fire truck siren wails",
        "helicopter": "a helicopter flies", "moo": "a cow moos", "policecar": "a police siren wails",
        "rooster": "a rooster crows", "scream": "someone screams", "screaming": "people scream",
        "sheep": "a sheep bleats", "apache": "a helicopter flies", "bats": "bats squeak",
        "birdchirp": "a bird chirps", "birds": "birds sing", "camera": "a camera shutter clicks",
        "f": "a jet plane flies past", "jet": "a jet plane flies past", "t": "a jet plane flies past",
        "frogs": "frogs croak", "gull": "a seagull cries", "lava": "lava bubbles", "oceanwaves": "ocean waves crash",
        "rain": _RAIN, "rocket": "a rocket flies", "splash": "a splash of water", "thunder": _THUNDER,
        "wolf": "a wolf howls", "tankmove": "a tank rolls along", "shoot machinegun": "a machine gun fires",
        "shoot shotgun": "a shotgun fires", "shoot launch": "a rocket launches", "shoot large": "a cannon fires",
        "shoot medium": "a cannon fires", "shoot small": "a small cannon fires", "shoot xlarge": "a big cannon fires",
        "shoot laser": "a laser gun fires",
    },
    "7kaa-data": {"fire": "a fire crackles", "quake": "an earthquake rumbles", "rain": _RAIN,
                  "thunder": _THUNDER, "wind": _WIND},
    "megaglest-data": {
        # farm animals are units that answer with their call when selected or ordered
        "cow ack": "a cow moos", "cow select": "a cow moos", "pig ack": "a pig grunts", "pig select": "a pig grunts",
        "pig attack": "a pig squeals", "chicken ack": "a chicken clucks", "chicken select": "a chicken clucks",
        "chicken standing": "a chicken clucks", "sheep": "a sheep bleats", "sheep die": "a sheep bleats",
        "bull ack": "a bull bellows", "bull select": "a bull bellows", "ele": "an elephant trumpets",
        "eagle ack": "an eagle screeches", "eagle select": "an eagle screeches", "snake attack": "a snake hisses",
        "anvil": "an anvil rings", "arrow hit": "an arrow hits", "catapult attack": "a catapult launches",
        "tech building fall": "a building collapses", "worker harvest wood": "someone chops wood",
        "worker mine": "a pickaxe strikes rock", "horseman walk": "a horse gallops", "swordman attack": "swords clash",
        # tilesets' ambient calls
        "owl": "an owl hoots", "rooster": "a rooster crows", "chicken": "a chicken clucks", "wolf": "a wolf howls",
        "hawk": "a hawk screeches", "wind": _WIND, "rain": _RAIN, "mudchute cow": "a cow moos",
        "water sounds water": "a splash of water",
    },
    "simutrans-pak64": {
        "boat horn": "a ship's horn blows", "boing": "a spring boings", "bus": "a bus drives past",
        "buzzsaw": "a circular saw cuts wood", "cash": "a cash register rings", "comet jet": "a jet plane flies past",
        "crossing": "a level crossing bell rings", "diesel": "a diesel train passes", "explosion": _EXPLOSION,
        "forest": "birds sing in a forest", "gavel": "a gavel bangs", "horse": "a horse neighs",
        "jackhammer": "a jackhammer pounds", "planelow": "a plane flies low overhead", "seagulls": "seagulls cry",
        "steam": "a steam train puffs", "tree cutting": "a tree is chopped", "truck": "a truck drives past",
    },
    "hydrogen-data": {
        "ride": "a ride cymbal is hit", "bell": "a ride cymbal bell rings", "cowbell": "a cowbell is hit",
        "crash": "a crash cymbal crashes", "hand clap": "hands clap", "hat closed": "a closed hi-hat is hit",
        "hat open": "an open hi-hat is hit", "hat pedal": "a hi-hat pedal closes",
        "hat semi open": "a half-open hi-hat is hit", "kick": "a kick drum is hit",
        "side stick": "a drummer clicks a stick on the snare rim", "snare": "a snare drum is hit",
        "snare rimshot": "a snare drum rimshot", "splash": "a splash cymbal is hit", "tom": "a tom drum is hit",
        "tom floor": "a floor tom is hit",
        # the TR-808 emulation: the same drums, electronic
        "clap": "an electronic hand clap", "clave": "electronic claves click", "conga": "an electronic conga is hit",
        "tr emulation kit cowbell": "an electronic cowbell is hit", "cymbal": "an electronic cymbal crashes",
        "tr emulation kit hat closed": "an electronic closed hi-hat is hit",
        "tr emulation kit hat open": "an electronic open hi-hat is hit",
        "tr emulation kit hat pedal": "an electronic hi-hat pedal closes",
        "tr emulation kit kick": "an electronic kick drum is hit", "shaker": "an electronic shaker shakes",
        "tr emulation kit snare": "an electronic snare drum is hit",
        "tom hi": "an electronic tom drum is hit", "tom low": "an electronic tom drum is hit",
        "tom mid": "an electronic tom drum is hit",
    },
    "flightgear-data-base": {
        "r slow": "a piston aircraft engine runs", "coughing": "an aircraft engine coughs and sputters",
        "cranking": "an engine cranks", "crash": "a plane crashes", "door close": "a door closes",
        "engine prop": "a propeller plane engine runs", "engstart": "an aircraft engine starts",
        "gatling": "a gatling gun fires", "gear hrn": "a warning horn sounds", "helicopter": "a helicopter flies",
        "jet": "a jet engine roars", "p d rpm": "a piston aircraft engine runs",
        "p d starter": "an aircraft engine starts", "p d startup": "an aircraft engine starts",
        "prop": "a propeller plane drones", "radionoise": "radio static",
        "rain windshield": "rain patters on a windshield", "rain": _RAIN, "rotor": "helicopter rotor blades thump",
        "rotor blade": "helicopter rotor blades thump", "squeal": "tyres squeal", "stall": "a stall warning horn sounds",
        "thunder": _THUNDER, "turbine start": "a turbine engine starts", "turbine loop": "a turbine engine whines",
        "turbine shutdown": "a turbine engine winds down", "turbojet fan": "a jet engine roars",
        "turboprop": "a turboprop engine runs", "wind": _WIND, "wind khz": _WIND,
        # the Cessna 172's own sounds
        "door closing": "a door closes", "door opening": "a door opens", "engine crank": "an engine cranks",
        "engine start": "an aircraft engine starts", "engine idle": "an aircraft engine idles",
        "engine": "a propeller plane engine runs", "keys": "keys jingle",
        "tires rolling asphalt": "tyres roll on asphalt", "tires rolling gravel": "tyres roll on gravel",
        "tires screech asphalt": "tyres screech", "water fast": "water rushes", "window closing": "a window closes",
        "window opening": "a window opens", "glove compartment closing": "a compartment closes",
        "glove compartment opening": "a compartment opens",
    },
    "kanagram": {"chalk": "chalk scratches on a blackboard"},
    # Sound.ocg; left out: its fantasy creatures (mooq, puka, wipf, chippie), the clonks' wordless
    # voice lines (confirm, doubt, ...), interface sounds and hits that say nothing of what was hit.
    "openclonk-data": {
        "bat chirp": "a bat chirps", "bat flutter": "a bat flutters its wings", "chippie egg crack": "an egg cracks",
        "monster growl": "a monster growls", "animals mosquito buzz": "a mosquito buzzes",
        "action breathing": "someone breathes heavily", "dig dig": "someone digs with a shovel",
        "action munch": "someone munches", "movement rustle": "clothes rustle", "movement step": "footsteps",
        "laughter": "someone laughs", "scream": "someone screams", "hurt": "someone cries out in pain",
        "singing": "someone sings",
        "environment birds loop": "birds sing", "disasters earthquake": "an earthquake rumbles",
        "lightning thunder": _THUNDER, "tree chop": "an axe chops wood", "tree crack": "a tree cracks",
        "tree landing": "a tree falls", "environment waterfall": "a waterfall roars", "environment wind loop": "wind blows",
        "fire blast": _EXPLOSION, "fire blast alt": _EXPLOSION, "fire blast firework": "fireworks bang",
        "fire cracker": "a firecracker bangs", "fire fire": "a fire crackles", "fire fireball": "a fireball whooshes",
        "fire fuse": "a fuse hisses", "fire fuse loop": "a fuse hisses", "fire fuse short": "a fuse hisses",
        "fire inflame": "a fire ignites", "fire spark": "sparks crackle",
        "glass glass break": "glass breaks", "glass glass shatter": "glass shatters", "glass glass hit": "something hits glass",
        "metal dull metal hit": "metal clangs", "metal light metal hit": "metal clangs",
        "rock rock hit": "a rock hits stone", "rock rockfall": "rocks fall",
        "wood dull wood hit": "something knocks on wood", "wood wood hit": "something knocks on wood",
        "wood wood creak": "wood creaks",
        "liquids boiling": "water boils", "liquids bubble": "water bubbles", "liquids pshshsh": "steam hisses",
        "liquids sizzle": "something sizzles", "liquids splash": "a splash of water", "liquids stereo rain": _RAIN,
        "liquids swim": "someone swims", "liquids waterdrop": "water drips",
        "arrow shoot": "an arrow is shot", "balloon inflate": "a balloon is inflated", "balloon pop": "a balloon pops",
        "objects catapult launch": "a catapult launches", "objects electrical": "electricity crackles",
        "objects line snap": "a rope snaps", "plane plane crash": "a plane crashes",
        "plane propeller loop": "a propeller plane engine runs", "objects spray can": "a spray can hisses",
        "blunderbuss gun shoot": "a gun fires", "blunderbuss click": "a gun clicks", "bow draw": "a bow is drawn",
        "bow shoot": "an arrow is shot", "javelin throw": "a javelin is thrown",
        "shield metal hit": "a sword hits a metal shield", "shield wood hit": "a sword hits a wooden shield",
        "weapons weapon hit": "a sword hits", "weapons weapon swing": "a sword swings through the air",
        "windbag gust": "a gust of wind",
        "chest close": "a chest closes", "chest open": "a chest opens", "structures door close": "a door closes",
        "structures door open": "a door opens", "structures door unlock": "a door is unlocked",
        "elevator drilling": "a drill drills", "elevator moving": "an elevator moves", "structures fan loop": "a fan whirs",
        "furnace loop": "a furnace roars", "structures hinge creak": "a hinge creaks",
        "structures pumpjack": "a pump jack pumps", "structures sawmill ripcut": "a saw cuts wood",
        "structures steam engine": "a steam engine runs", "stone gate chain": "a chain rattles",
        "stone gate gate move": "a stone gate moves", "structures switch flip": "a switch flips",
        "structures wheels turn": "wheels turn",
        "ui cash": "a cash register rings", "ui ding": "a bell dings", "ui fanfare": "a fanfare plays",
    },
}
# flightgear's cockpit callouts (a voice says "pull up"): their stems, as the words said; the
# altitude counts and the "inop" system messages are left out.
FLIGHTGEAR_CALLOUTS = {"bank angle", "dont sink", "glideslope", "minimums", "pull up", "retard", "sink rate",
                       "terrain", "too low flaps", "too low gear", "too low terrain", "adjust vertical speed",
                       "climb", "climb crossing", "climb now", "descend", "descend crossing", "descend now",
                       "do not climb", "do not descend", "increase climb", "increase descent",
                       "maintain vertical speed", "monitor vertical speed", "traffic"}
SAID = {"dont sink": "don't sink"}


def key(folders: tuple[str, ...], stem: str) -> list[str]:
    """The names a file is looked up by, most specific first: ('explosions',), 'large' ->
    ['explosions large', 'large']; 'Snare-Hard' -> ['... snare', 'snare']."""
    name = " ".join(w for w in words(stem) if w not in LAYERS)
    parent = " ".join(words(folders[-1])) if folders else ""
    return [f"{parent} {name}".strip(), name]


def more_caption(package: str, folders: tuple[str, ...], stem: str) -> tuple[str | None, str]:
    """(caption, kind) of a sound of one of MORE_PACKAGES, None when its map has no caption for it."""
    names = key(folders, stem)
    if package == "flightgear-data-base" and names[1] in FLIGHTGEAR_CALLOUTS:
        voice = "a woman" if "female" in folders else "a voice"
        return f"{voice} says '{SAID.get(names[1], names[1])}'", "speech"
    table = CAPTIONS[package]
    caption = next((table[n] for n in names if n in table), None)
    return caption, "speech" if caption and " says '" in caption else "sound"
