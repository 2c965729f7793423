"""Captions from sound file names and folders: "doors_steel_door_close.ogg" -> "a steel door closes".

A name is split into words (underscores, hyphens, dots, camelCase; digits dropped), filler words
are removed, cryptic words are replaced from VOCAB, and the last word that is an action becomes
the verb of the sentence (ACTIONS). A name with no action is "the sound of ...". NAMES holds the
whole caption for names that no rule reads well (numbered, abbreviated, or foreign words).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# Words that say nothing about the sound (package prefixes, variants, formats).
FILLER = {"default", "sound", "sounds", "sfx", "snd", "env", "oxygen", "im", "sys", "app", "loop", "mono",
          "stereo", "generic", "mn", "a", "b", "c", "the", "var", "node", "item", "carts", "doors", "tnt",
          "xpanes", "player", "immediate", "oddly", "breakable", "by", "hand", "animal", "k"}

# Cryptic or abbreviated words -> plain ones.
VOCAB = {
    "fs": "footstep", "hstep": "footstep", "mstep": "hoof", "smove": "ship sails", "con": "construction",
    "foorstep": "footstep", "swordhit": "sword hit", "arrowfly": "arrow flies", "wavecrash": "waves crash",
    "windgust": "wind gusts", "ballist": "ballista", "croud": "crowd", "trafic": "traffic", "htech": "",
    "expl": "explosion", "explo": "explosion", "lrg": "large", "sml": "small", "med": "medium",
    "can": "cannon", "mg": "machine gun", "thover": "hovercraft", "metbrk": "metal breaks",
    "woodbrk": "wood breaks", "inh2o": "splash into water", "claxon": "horn", "ecrase": "crush",
    "foule": "crowd", "mort": "death", "lmoins": "life lost", "lplus": "extra life", "invinc": "power up",
    "stonegrind": "stone grinding", "beerbubble": "beer bubbles", "winebubble": "wine bubbles",
    "goldspin": "gold spinning", "ironping": "iron rings", "goldping": "gold rings",
    "benchsaw": "bench saw", "stonecutter": "stone cutter", "stonemason": "stone mason",
    "toolsmith": "tool smith", "biginn": "inn", "jetengine": "jet engine", "revup": "revs up",
    "hog": "hedgehog", "rubberduck": "rubber duck", "rcplane": "toy plane", "minetick": "mine ticks",
    "hogchant": "hedgehogs chant", "melonimpact": "melon hits", "mineimpact": "mine hits",
    "grenadeimpact": "grenade hits", "graveimpact": "gravestone lands", "shotgunfire": "shotgun fires",
    "shotgunreload": "shotgun reload", "sniperreload": "sniper rifle reload", "jetpackboost": "jetpack",
    "throwpowerup": "throw charges", "throwrelease": "throw", "ropeshot": "rope shoots",
    "ropeattach": "rope attaches", "roperelease": "rope releases", "shutterclick": "camera shutter",
    "whipcrack": "whip cracks", "firepunch": "fire punch", "baseballbat": "baseball bat",
    "drillgun": "drill gun", "landgun": "land gun", "sinegun": "ray gun", "portalshot": "portal gun",
    "portalopen": "portal opens", "portalswitch": "portal switches", "planewater": "plane hits water",
    "beewater": "bee hits water", "yoohoo": "someone calls yoo-hoo", "birdylay": "bird lays an egg",
    "onager": "catapult", "amb": "", "pa": "public address announcement", "gp": "",
}

# Action words -> sentence templates; {x} is the rest of the name, "a x" with its article.
ACTIONS = {
    "close": "{a} closes", "open": "{a} opens", "footstep": "footsteps on {x}", "walking": "footsteps on {x}",
    "running": "someone runs on {x}", "break": "{a} breaks", "breaks": "{a} breaks", "explode": "{a} explodes",
    "explosion": "{a} explosion", "burning": "{x} burns", "ignite": "{a} is lit", "extinguish": "{a} is put out",
    "attack": "{a} attacks", "select": "{a} calls", "order": "{a} calls", "trained": "{a} calls",
    "idle": "{a} snorts", "call": "{a} calls", "squeal": "{a} squeals", "collapse": "{a} collapses",
    "falling": "{a} falls", "shooting": "{a} shoots", "shoot": "{a} shoots", "move": "{a} moves",
    "moving": "{a} rolls along", "dies": "{a} dies", "die": "{a} dies", "drop": "{a} drops",
    "hit": "{a} hits something", "flies": "{a} flies", "crash": "{x} crash", "gusts": "{x} gusts",
    "sails": "{a} sails", "rings": "{x} rings", "hits": "{a} hits", "fires": "{a} fires", "chant": "{x} chant",
    "shoots": "{a} shoots", "attaches": "{a} attaches", "releases": "{a} releases", "opens": "{a} opens",
    "switches": "{a} switches", "bubbles": "{x} bubbles", "ticks": "{a} ticks", "dig": "someone digs {x}", "dug": "someone digs {x}", "place": "{a} is placed",
    "choppy": "someone chops {x}", "cracky": "someone cracks {x}", "crumbly": "someone digs {x}", "bounce": "{a} bounces", "roll": "{a} rolls", "splash": "a splash",
}
DYING = {"death"}  # a death folder or word turns an animal's sound into "... dies"

# Whole names (lower-case, digits dropped) -> caption, where no rule reads well.
NAMES = {
    "foot": "footsteps", "illegal": "an error buzzer", "wakeup": "a wake-up fanfare", "wall": "a wall is hit",
    "tread": "tank treads roll", "mortar": "a mortar fires", "splash": "a splash of water",
    "chink": "a metallic chink", "digger": "someone digs", "goodidea": "a voice says 'good idea'",
    "letsgo": "a voice says 'let's go'", "ohno": "a voice says 'oh no'", "plop": "a plop",
    "tick": "a clock ticks", "ting": "a bell tings", "yipee": "a voice shouts 'yippee'",
    "ho yeh": "a voice shouts 'ho yeah'", "oh": "a voice says 'oh'", "no": "a voice says 'no'",
    "go": "a voice says 'go'", "stop": "a voice says 'stop'", "argent": "coins jingle", "coins": "coins jingle",
    "alien": "an alien sound", "dream": "a dreamy chime", "finlevel": "a level-complete jingle",
    "menu": "a menu click", "click": "a click", "sleep": "a snoring sound", "bonus": "a bonus jingle",
    "life": "a life jingle", "speedup": "a speed-up sound", "speedown": "a slow-down sound",
    "fire fire": "a fire crackles", "fire large": "a large fire roars", "fire small": "a small fire crackles",
    "fire flint and steel": "flint and steel strike a spark", "lava": "lava bubbles", "cool lava": "lava hisses as it cools",
    "furnace active": "a furnace roars", "tool breaks": "a tool breaks", "damage": "someone is hurt",
    "sheep": "a sheep bleats", "horse": "a horse neighs", "pig": "a pig grunts", "cattle": "cattle moo",
    "chicken": "a chicken clucks", "camel": "a camel grunts", "flamingo": "a flamingo calls",
    "peacock": "a peacock calls", "goat": "a goat bleats", "elephant": "an elephant trumpets",
    "lion": "a lion roars", "wolf": "a wolf howls", "boar": "a boar grunts", "coyote": "a coyote howls",
    "crickets": "crickets chirp", "frog": "a frog croaks", "moose": "a moose bellows", "stag": "a stag bellows",
    "duck": "a duck quacks", "donkey": "a donkey brays", "ox": "an ox lows", "bird": "a bird sings",
    "farm animal": "farm animals call", "exotic birds": "exotic birds sing", "bee": "a bee buzzes",
    "ufo": "a ufo hums", "horn": "a car horn honks", "thunder": "thunder rumbles", "rain": "rain falls",
    "clock": "a clock ticks", "anvil": "an anvil rings", "hammer": "a hammer strikes",
    "wilhelm scream": "a man screams", "ugh": "a man grunts", "wee": "someone shouts 'whee'",
    "river": "a river flows", "waterfall": "a waterfall roars", "skid": "tyres skid",
    "crash": "a crash", "boing": "a spring boings", "nitro": "a nitro boost whooshes",
    "static radio": "radio static", "fireworks show": "fireworks bang", "airplane jet engine": "a jet engine roars",
    "engine large": "a large engine runs", "engine small": "a small engine runs", "car accel": "a car accelerates",
    "car revup": "a car engine revs up", "gnu flute": "a flute plays", "metal clang": "metal clangs",
    "wooden bridge": "a car crosses a wooden bridge", "swatter": "a swatter swats", "plunger": "a plunger pops",
    "goal scored": "a crowd cheers a goal", "bubblegum explode": "bubble gum pops", "inflate": "a balloon inflates",
    "spaceship": "a spaceship hums", "tractor beam": "a tractor beam hums", "bowling roll": "a bowling ball rolls",
    "bowling shoot": "a bowling ball is thrown", "ball bounce": "a ball bounces", "lenautile restaurant": "a busy restaurant",
    "machine": "a machine runs", "parachute": "a parachute opens", "jump": "someone jumps", "strike": "bowling pins crash",
    "steps": "footsteps", "kiss": "a kiss", "whistle": "someone whistles", "droplet": "a water drop falls",
    "countdown": "a countdown beep", "beep": "a beep", "hellish": "an evil laugh", "hell growl": "a monster growls",
    "hell ooff": "a monster grunts", "hell ow": "a monster cries out", "hell ugh": "a monster groans",
    "egg": "an egg cracks", "cake": "a cake explodes", "steam": "steam hisses", "blowtorch": "a blowtorch hisses",
    "flamethrower": "a flamethrower roars", "minigun": "a minigun fires", "gun": "a gun fires", "plane": "a plane flies",
    "molotov": "a bottle smashes and burns", "knife impact": "a knife hits", "ice beam": "an ice beam hums",
    "warp": "a warp sound", "denied": "an error buzz", "lowgravity": "a low-gravity whoosh",
    "ride of the valkyries": "an orchestra plays the ride of the valkyries", "tardis": "a time machine groans",
    "pickhammer": "a pneumatic drill", "airmine": "a mine beeps", "custom": "a sound effect",
    "residential high": "a busy city street", "residential low": "a quiet neighbourhood",
    "residential med": "a city neighbourhood", "residential low low": "a quiet neighbourhood",
    "traffic high": "heavy traffic", "traffic low": "light traffic", "rail train": "a train passes",
    "rocket explosion": "a rocket explodes", "rocket takeoff": "a rocket takes off", "rocket": "a rocket engine roars",
    "sports crowd": "a crowd cheers at a stadium", "school": "children play in a schoolyard",
    "parkland lake": "birds by a lake", "parkland plane": "birds in a park", "wind mill": "a windmill turns",
    "window open": "a window opens", "window close": "a window closes", "build": "building work",
    "raze": "a building is demolished", "coal mine": "a coal mine", "ore mine": "an ore mine", "tip": "a rubbish tip",
    "power coal full": "a power station hums", "power coal empty": "a quiet power station",
    "power coal low": "a power station hums", "power coal med": "a power station hums", "power line": "power lines hum",
    "power solar": "a solar plant hums", "substation": "an electrical substation hums",
    "substation on": "a switch clicks on", "substation off": "a switch clicks off", "recycle": "a recycling plant",
    "fire station": "a fire siren", "fire wasteland": "a fire crackles", "farm": "a farm", "organic farm": "a farm",
    "harbor": "a harbour", "market full": "a busy market", "market empty": "an empty market",
    "market low": "a quiet market", "market med": "a market", "monument construction": "construction work",
    "industry high": "heavy industry", "industry light": "a workshop", "dirt track": "a car on a dirt track",
    "health": "a hospital", "commune": "a village", "shanty": "a shanty town", "green": "birds sing",
    "university": "a lecture hall", "pottery": "a potter's wheel", "blacksmith": "a blacksmith hammers",
    "water": "water flows", "mill": "a mill grinds", "monument": "a monument", "fire": "a fire siren",
    "lobby chat": "a chat message chime", "lobby freshmen": "a chime", "message": "a message chime",
    "site occupied": "soldiers cheer", "under attack": "an alarm horn", "create construction site": "a click",
    "mill turning": "a mill wheel turns", "weaving": "a loom weaves", "weaver": "a loom weaves",
    "falling tools": "tools fall", "sharpening": "a blade is sharpened", "smith": "a smith hammers",
    "fast woodcutting": "an axe chops wood", "woodcutting": "an axe chops wood", "tree falling": "a tree falls",
    "sawing": "someone saws wood", "blackwood": "someone chops wood", "scythe": "a scythe cuts grass",
    "fisher pull net": "a fisher pulls a net", "fisher throw net": "a fisher throws a net", "meal": "a tavern",
    "ration": "a tavern", "inn": "a tavern", "tavern": "a tavern", "geologist hammer": "a hammer strikes rock",
    "dig choppy": "someone chops wood", "dig cracky": "someone breaks stone", "dig crumbly": "someone digs dirt",
    "dig snappy": "twigs snap", "dug": "a block breaks", "smoke": "a puff of smoke", "place": "a block is placed",
    "place hard": "a stone block is placed", "place metal": "a metal block is placed", "dig": "a click",
    "dug metal": "metal breaks", "fizzle": "something fizzles", "sawmill": "a sawmill", "furnace": "a furnace roars",
}


def words(text: str) -> list[str]:
    """'doors_steel_door-Close2.ogg' -> ['doors', 'steel', 'door', 'close']."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", PurePosixPath(text).stem if "." in text[-5:] else text)
    return [w for w in re.split(r"[^A-Za-z]+", text.lower()) if w]


def article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def sound_caption(name: str, folders: tuple[str, ...] = ()) -> str | None:
    """A caption for a sound file's stem and its folder names, or None when nothing is left."""
    raw = words(name)
    key = " ".join(raw)
    dying = any(w in DYING for f in folders for w in words(f)) or "death" in raw
    if dying and key in NAMES and " " not in key:  # "horse" in a death folder: the horse dies
        return f"{article(key)} dies"
    if key in NAMES:
        return NAMES[key]
    mapped = " ".join(VOCAB.get(w, w) for w in raw).split()
    key = " ".join(w for w in mapped if w not in FILLER)
    if key in NAMES:
        return NAMES[key]
    kept = [w for w in mapped if w not in FILLER or w in ACTIONS]
    kept = [w for w in kept if w not in DYING]
    if not kept:
        return None
    if dying and len(kept) == 1 and kept[0] in {k.split()[0] for k in NAMES}:
        return f"{article(kept[0])} dies"
    for i in range(len(kept) - 1, -1, -1):
        if kept[i] in ACTIONS:
            rest = " ".join(kept[:i] + kept[i + 1:])
            if not rest:
                break
            return ACTIONS[kept[i]].format(a=article(rest), x=rest)
    stem = " ".join(kept)
    if stem in NAMES:
        return NAMES[stem]
    return f"the sound of {article(stem)}" if len(kept) <= 3 else None


# --- other ways to say a caption ------------------------------------------------------------------
# Verbs of sounds, in their base form: a caption's verb is found among these ("barks" -> "bark").
VERBS = set("""
accelerate alarm applaud approach arrive attach attack bang bark bay beat beep bellow bleat blow boil boing bounce bray
break breathe bubble burn burst buzz call chant chatter cheer chime chirp chop clank clang clap clatter click
close cluck clunk collapse crack crackle crash creak croak cross crow crumple cry  crunch cut dig die drip drive drone
drop explode fall fire  fizz fizzle flap flow fly gallop gasp giggle gobble grind groan growl grunt gurgle hammer hiss
hit honk hoot howl hum inflate jingle jump knock land laugh leave lock low meow moo neigh open pass pant play plop
pop pound pour pull purr quack rain rattle release rev ring rip roar roll rumble run rush rustle saw scrape
scream screech shake shatter shoot shout shriek sigh sing sizzle skid slam slow sound smash snap snarl snore snort sparkle
splash squeak squeal squawk start stop strike strum swat swim swoosh take tap tear throw thud thump tick ting toot
trumpet turn twitter wail weave whimper whine whir whisper whistle whoosh yap yawn yell yelp zap zip
""".split())
DOUBLED = {"bat", "chop", "cut", "dig", "drip", "drum", "hit", "hum", "jog", "plop", "pop", "rub", "run", "skid", "slam",
           "snap", "spin", "stop", "strum", "swat", "swim", "tap", "thud", "trot", "zap", "zip", "rev", "flap"}
PLURAL_NOUNS = {"sheep", "cattle", "people", "deer", "geese", "mice", "children", "fish"}


def _base(word: str) -> str | None:
    """The base form of a third-person verb of VERBS ('flies' -> 'fly', 'crashes' -> 'crash'), or None."""
    if not word.endswith("s") or word.endswith("ss"):
        return None
    for base in (word[:-3] + "y" if word.endswith("ies") else None, word[:-2] if word.endswith("es") else None,
                 word[:-1]):
        if base in VERBS:
            return base
    return None


def _ing(base: str) -> str:
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return base[:-1] + "ing"
    return base + (base[-1] if base in DOUBLED else "") + "ing"


def phrasings(caption: str) -> list[str]:
    """The caption and other ways to say it, the caption first, no repeats: 'a dog barks' ->
    ['a dog barks', 'dog barking', 'the sound of a dog']; 'chickens cluck' -> [..., 'chickens
    clucking', 'the sound of chickens']; 'the sound of an explosion' -> [..., 'an explosion',
    'explosion sound']; 'a busy market' -> [..., 'the sound of a busy market']. Quoted speech
    and two-clause captions are not rephrased."""
    out = [caption]
    if re.search(r"'\w[^']*'", caption) or caption.startswith("the sound of ") and " and " in caption:
        return out
    if caption.startswith("the sound of "):
        thing = caption.removeprefix("the sound of ")
        out += [thing, f"{thing.split(' ', 1)[-1] if thing.startswith(('a ', 'an ')) else thing} sound"]
        return list(dict.fromkeys(out))
    words_ = caption.split()
    det = words_[0] in {"a", "an", "the"}
    if "is" in words_[1:]:  # "a block is placed" -> "block being placed", "the sound of a block being placed"
        at = words_.index("is")
        being = " ".join(words_[:at] + ["being"] + words_[at + 1:])
        return list(dict.fromkeys([caption, being.split(" ", 1)[1] if det else being, f"the sound of {being}"]))
    if "sound" in words_:  # "a warning sound": "the sound of a warning sound" says nothing more
        return out
    verb_at = None
    for i in range(1 + det, len(words_)):
        w, before = words_[i], words_[i - 1]
        plural = before.endswith("s") and not before.endswith(("ss", "us", "is")) or before in PLURAL_NOUNS
        if _base(w) or (w in VERBS and plural):
            verb_at = i
            break
    if verb_at is None:
        out.append(f"the sound of {caption}")
        return list(dict.fromkeys(out))
    subject = words_[:verb_at]
    rest = [_ing(_base(w) or w) if (k == 0 or words_[verb_at + k - 1] == "and") and (_base(w) or w in VERBS) else w
            for k, w in enumerate(words_[verb_at:])]
    out.append(" ".join(subject[det:] + rest))
    out.append("the sound of " + " ".join(subject))
    return list(dict.fromkeys(out))
