"""A seeded generator of short TinyStories-style children's stories.

Stories are built from plot shapes (lists of paragraphs, each a list of steps; a step is a
tuple of alternative sentence templates) filled with characters, places and objects.
Everything is drawn from one `random.Random(seed)`, so the same seed gives the same bytes.
Paragraphs are separated by a single newline, leaving "\n\n" free to separate stories.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

STORIES_VERSION = 1  # bump when templates change, so cached corpora are regenerated

_GIRLS = ("Lily Mia Anna Lucy Sue Emma Zoe Sara Mila Ella Ruby Rosie Amy Molly Nina Grace Ivy "
          "Chloe Daisy Sophie Lola Maya Jane Kim").split()
_BOYS = ("Tom Ben Sam Max Tim Jack Leo Jake Finn Noah Owen Dan Ollie Theo Eli Ray Luke Henry "
         "Bob Joe Alex Milo Pete Jon").split()
_ANIMALS = "bunny puppy kitten bear fox duck mouse owl frog squirrel".split()
_TRAITS = "kind happy curious brave shy little playful gentle clever silly friendly busy".split()
_HOMES = ("in a small house near the woods", "in a big city", "on a farm with many animals",
          "in a little town by the sea", "in a cozy house with a red door", "next to a big park")
_PLACES = ("at the park", "in the garden", "in the forest", "at the beach", "on the farm",
           "by the lake", "at the playground", "at the zoo", "in the meadow", "by the river",
           "on the hill", "in the backyard", "at school", "at the library", "near the pond",
           "in the woods", "at the market", "on the beach")
_OBJECTS = ("ball", "kite", "teddy bear", "toy car", "book", "drum", "doll", "boat", "balloon",
            "puzzle", "hat", "blanket", "robot", "train", "truck", "umbrella", "bike", "wagon",
            "jump rope", "yo-yo", "shell", "crayon box", "scarf", "toy plane", "basket")
_COLORS = "red blue green yellow pink purple orange shiny big soft".split()
_ADULTS = (("mom", "she"), ("dad", "he"), ("grandma", "she"), ("grandpa", "he"))
_GOOD = "happy proud glad excited thankful cheerful joyful warm".split()
_BAD = "sad upset worried unhappy gloomy lonely grumpy".split()
_ACTIVITIES = ("play tag", "pick flowers", "look for bugs", "sing songs", "have a picnic",
               "play hide and seek", "draw pictures", "jump in the leaves", "watch the birds",
               "build a sandcastle", "look at the clouds", "play ball")
_CHORES = ("washed the dishes", "fed the cat", "watered the plants", "made {his} bed",
           "put away {his} toys", "swept the floor", "folded the towels")
_REASONS = ("{fname} had one and it looked like so much fun", "{his} old one was broken",
            "{he} wanted to play with it every day", "{he} wanted to show it to {his} friends")
_FEARS = ("the dark", "the big dog next door", "loud thunder", "the deep water",
          "the tall slide", "buzzing bees", "the old tree behind the house")
_SKILLS = (("ride a bike", "{he} fell off and hurt {his} knee", "rode all the way down the street"),
           ("swim", "{he} swallowed some water and coughed", "swam across the whole pool"),
           ("tie {his} shoes", "the laces got all tangled", "tied a perfect bow"),
           ("bake a cake", "the cake came out flat", "baked a big, fluffy cake"),
           ("climb the tall tree", "{he} slipped and slid down", "reached the top branch"),
           ("read a book", "the words were too hard", "read a whole story by {self}"))
_NEEDS = (("a little bird with a hurt wing", "made a soft bed for the bird and gave it water",
           "the bird could fly again"),
          ("a lost puppy", "read the tag on its collar and walked it home",
           "the puppy licked {his} face"),
          ("an old man who dropped his apples", "picked up every apple and put them in his bag",
           "the old man gave {him} the reddest apple"),
          ("a baby duck stuck in the mud", "pulled the duck out very gently",
           "the duck swam back to its mother"),
          ("a kitten stuck in a tree", "ran to get a ladder and a grown-up to help",
           "the kitten purred in {his} arms"))
_MESSES = ("knocked over a vase", "spilled a big glass of milk", "tore a page of a book",
           "broke a plate", "knocked a lamp off the table")
_FINDS = (("a tiny door in an old tree", "a little room full of glowing stones"),
          ("a shiny box under a rock", "an old key and a treasure map"),
          ("a bottle with a note inside", "a message that said, \"Be kind every day.\""),
          ("a big box behind a bush", "a pile of toys that someone wanted to share"))
_INDOORS = ("build a blanket fort", "bake cookies", "paint pictures", "play a board game")

_OPENINGS = [("Once upon a time, there was {a_trait} {kind} named {name}.",
              "One day, {a_trait} {kind} named {name} was {where}.",
              "There once was {a_trait} {kind} called {name}.",
              "{Name} was {a_trait} {kind} who lived {home}.")]
_PLOTS: dict[str, list[list[tuple[str, ...]]]] = {
    "want": [_OPENINGS, [
        ("{Name} really wanted {a_obj}.", "More than anything, {name} wanted {a_obj}."),
        ("{He} wanted it because {reason}.",),
        ("{He} asked {his} {adult}, \"Can I please have {a_obj}?\"",
         "\"{Adult}, can I have {a_obj}?\" {name} asked.")], [
        ("{His} {adult} smiled and said, \"If you help me this week, you can have one.\"",),
        ("So {name} worked hard. {He} {chore1} and {chore2}.",
         "So every day, {name} {chore1}, and then {he} {chore2}.")], [
        ("At the end of the week, {his} {adult} gave {him} {a_obj}.",),
        ("{Name} felt so {good} that {he} jumped up and down.",),
        ("In the end, {name} learned that hard work pays off.",
         "From that day on, {he} took good care of {his} {obj}.")]],
    "lost": [_OPENINGS, [
        ("{Name} loved {his} {obj} and took it everywhere.",),
        ("One day, {he} was playing {where} and lost it.", "But one day, the {obj} was gone."),
        ("{Name} felt very {bad} and began to cry.",
         "{Name} was so {bad} that {he} sat down and cried.")], [
        ("{His} friend {fname} saw {him} and asked, \"What is wrong?\"",),
        ("\"I lost my {obj},\" said {name}. \"I will help you look,\" said {fname}.",),
        ("They looked under the slide and behind the trees.",
         "They looked everywhere, high and low.")], [
        ("At last, {fname} found the {obj} under a pile of leaves.",),
        ("{Name} hugged {fhim} and said, \"Thank you! You are a good friend.\"",),
        ("In the end, {name} learned that friends always help each other.",)]],
    "fear": [_OPENINGS, [
        ("{Name} was scared of {fear}.", "There was one thing {name} did not like: {fear}."),
        ("Every time {he} thought about it, {he} felt {bad}.",
         "It made {him} feel {bad} and small.")], [
        ("One night, {he} told {his} {adult} about it.",),
        ("{His} {adult} hugged {him} and said, \"It is okay to be scared. "
         "Let's be brave together.\"",),
        ("So {name} held {his} {adult}'s hand and faced {fear}.",)], [
        ("It was not so scary after all.", "Soon, {name} was not scared anymore."),
        ("{Name} felt brave and {good}.", "{Name} smiled, because {he} felt {good} and brave."),
        ("From that day on, {name} knew that being brave means trying even when you are "
         "afraid.",)]],
    "share": [_OPENINGS, [
        ("{Name} had a new {obj}. It was {color} and very pretty.",),
        ("{His} friend {fname} came over and wanted to play with it.",),
        ("\"No, it is mine!\" said {name}.", "But {name} did not want to share.")], [
        ("{Fname} looked {bad} and sat down all alone.", "{Fname} felt {bad} and walked away."),
        ("{Name} saw this and felt bad inside, because {fname} was {his} best friend.",),
        ("So {he} gave {fname} the {obj} and said, \"Let's play together.\"",)], [
        ("They played with the {obj} all afternoon and laughed a lot.",
         "Playing together was much more fun than playing alone."),
        ("In the end, {name} learned that sharing makes playing more fun.",)]],
    "help": [_OPENINGS, [
        ("One afternoon, {name} went for a walk {where}.",),
        ("There {he} saw {need}.", "Suddenly, {he} saw {need}."),
        ("{Name} felt {bad}, so {he} wanted to help.",)], [
        ("Carefully, {name} {help}.",),
        ("It took a long time, but {he} did not give up.",),
        ("Soon, {result}.", "After a while, {result}.")], [
        ("{Name} smiled. Helping made {him} feel {good}.",
         "{Name} felt {good}, because {he} had been a good helper."),
        ("That night, {he} told {his} {adult} the whole story, and {ahe} was proud of {him}.",)]],
    "mess": [_OPENINGS, [
        ("One day, {name} was playing with {his} {obj} in the house.",),
        ("{He} ran too fast and {mess}.",),
        ("Oh no! {Name} felt scared.",)], [
        ("{He} thought about hiding, but {he} knew that would be wrong.",),
        ("So {he} went to {his} {adult} and told {ahim} the truth.",
         "So {he} found {his} {adult} and said, \"I am sorry. It was me.\"")], [
        ("{His} {adult} said, \"Thank you for telling me. Accidents happen.\"",),
        ("Together, they cleaned up the mess.", "Then they cleaned everything up together."),
        ("In the end, {name} felt {good}, because telling the truth is always right.",)]],
    "find": [_OPENINGS, [
        ("One sunny morning, {name} went exploring {where}.",),
        ("{He} found {find}.", "Soon, {he} spotted {find}."),
        ("{Name} was curious, so {he} looked closer.", "{He} wondered what it could be.")], [
        ("Inside, there was {inside}.",),
        ("{Name} could not believe {his} eyes!", "\"Wow!\" said {name}.")], [
        ("{He} ran to get {his} friend {fname} so they could see it together.",),
        ("In the end, it was the best day of {his} summer.",)]],
    "race": [_OPENINGS, [
        ("One day, {name} and {fname} had a race {where}.",),
        ("\"Ready, set, go!\" they shouted, and they ran as fast as they could.",)], [
        ("Then {fname} tripped on a rock and fell down.",
         "Halfway there, {fname} slipped and hurt {fhis} knee."),
        ("{Name} could win the race, but {he} stopped to help {fhim}.",),
        ("{He} helped {fname} stand up, and they walked to the end together.",)], [
        ("They both laughed and said it was a tie.", "Everyone cheered for both of them."),
        ("In the end, {name} learned that being kind is more important than winning.",)]],
    "skill": [_OPENINGS, [
        ("{Name} wanted to learn to {skill}.",),
        ("The first time {he} tried, {oops}.",),
        ("{Name} felt {bad} and wanted to give up.",)], [
        ("{His} {adult} said, \"Everyone needs practice. Try again tomorrow.\"",
         "\"Do not give up,\" said {his} {adult}. \"You will get better.\""),
        ("So {name} practiced every day.", "So {name} kept trying, day after day.")], [
        ("Then one day, {name} {success}!",),
        ("{Name} was so {good}. {He} knew that practice helps you grow.",)]],
    "rain": [_OPENINGS, [
        ("{Name} wanted to {activity} {where}.",),
        ("But then dark clouds came, and it started to rain.",),
        ("{Name} was {bad}, because {he} could not go outside.",)], [
        ("{His} {adult} had an idea. \"Let's {indoor}!\" {ahe} said.",),
        ("So they did, and it was a lot of fun.",
         "{Name} liked the idea, and soon {he} was smiling again.")], [
        ("Later, the sun came out, and there was a big rainbow in the sky.",),
        ("In the end, {name} learned that a rainy day can still be a happy day.",)]],
    "friend": [_OPENINGS, [
        ("One day, {name} saw a new {fkind} named {fname} {where}.",),
        ("{Fname} was all alone and looked {bad}.",)], [
        ("{Name} walked over and said, \"Hi! Do you want to {activity} with me?\"",),
        ("{Fname} smiled a big smile and said, \"Yes, please!\"",)], [
        ("They had so much fun together.", "They played until the sun went down."),
        ("From that day on, {name} and {fname} were best friends.",)]],
    "gift": [_OPENINGS, [
        ("Tomorrow was {his} {adult}'s birthday.",),
        ("{Name} wanted to give {ahim} a gift, but {he} had no money.",)], [
        ("So {he} made a card with a big heart on it, and {he} picked some flowers.",),
        ("{He} hid the gift under {his} bed so it would be a surprise.",)], [
        ("The next morning, {name} gave {his} {adult} the card and the flowers.",),
        ("{His} {adult} gave {him} a big hug and said, \"This is the best gift ever!\"",),
        ("{Name} felt very {good}, because a gift from the heart is the best kind.",)]],
}


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _character(rng: random.Random, avoid: str = "") -> dict[str, str]:
    girl = rng.random() < 0.5
    name = rng.choice([n for n in (_GIRLS if girl else _BOYS) if n != avoid])
    kind = rng.choice(_ANIMALS) if rng.random() < 0.25 else ("girl" if girl else "boy")
    pron = ("she", "her", "her", "herself") if girl else ("he", "him", "his", "himself")
    return dict(name=name, kind=kind, **dict(zip(("he", "him", "his", "self"), pron, strict=True)))


def _context(rng: random.Random) -> dict[str, str]:
    """Draw every slot a template might use (the draw order fixes the output for a seed)."""
    hero = _character(rng)
    friend = _character(rng, avoid=hero["name"])
    ctx = dict(hero, **{f"f{k}": v for k, v in friend.items()})
    adult, ahe = rng.choice(_ADULTS)
    obj = rng.choice(_OBJECTS)
    color = rng.choice(_COLORS)
    skill, need, find = rng.choice(_SKILLS), rng.choice(_NEEDS), rng.choice(_FINDS)
    chore1, chore2 = rng.sample(_CHORES, 2)
    ctx.update(trait=rng.choice(_TRAITS), home=rng.choice(_HOMES), where=rng.choice(_PLACES),
               adult=adult, ahe=ahe, ahim="him" if ahe == "he" else "her", obj=obj, color=color,
               a_obj=_article(f"{color} {obj}" if rng.random() < 0.5 else obj),
               good=rng.choice(_GOOD), bad=rng.choice(_BAD), activity=rng.choice(_ACTIVITIES),
               chore1=chore1, chore2=chore2, reason=rng.choice(_REASONS), fear=rng.choice(_FEARS),
               skill=skill[0], oops=skill[1], success=skill[2], need=need[0], help=need[1],
               result=need[2], mess=rng.choice(_MESSES), find=find[0], inside=find[1],
               indoor=rng.choice(_INDOORS))
    ctx["a_trait"] = _article(ctx["trait"])
    for k, v in ctx.items():  # slot values may themselves contain slots, e.g. "{his} bed"
        if "{" in v:
            ctx[k] = v.format(**ctx)
    ctx.update({k[0].upper() + k[1:]: v[0].upper() + v[1:] for k, v in list(ctx.items())})
    return ctx


def _story(rng: random.Random) -> str:
    plot = _PLOTS[rng.choice(sorted(_PLOTS))]
    ctx = _context(rng)
    paragraphs = []
    for i, para in enumerate(plot):
        sentences = [rng.choice(step).format(**ctx) for step in para]
        if i == 1 and paragraphs:  # the opening joins the first scene's paragraph
            paragraphs[-1] += " " + " ".join(sentences)
        else:
            paragraphs.append(" ".join(sentences))
    return "\n".join(paragraphs)


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """`n` stories; the same `(n, seed)` always gives the same list, and a smaller `n` a prefix."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    return [_story(rng) for _ in range(n)]


def write_jsonl(path: str | os.PathLike, n: int, seed: int = 0) -> Path:
    """Write `n` stories as TinyStories JSON lines (`{"text": ...}` per line), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for text in generate_stories(n, seed):
                f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        os.chmod(tmp, 0o644)  # mkstemp makes files private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
