"""The embedded mini world: a seeded generator of entities, facts and their verbalizations.

Real GPT-2 weights and hub datasets are out of reach offline, so the default benchmark runs on a
world the harness builds itself. It mirrors what makes the real tasks interesting:

- entities of eleven domains, each with typed attributes (people, places, years, quantities);
- task references realize every fact with varied templates, orderings and aggregations, three
  references per input, as E2E and WebNLG crowd workers wrote several texts per input;
- a pretraining corpus about *other* entities of *all* domains, unseen ones included (GPT-2 read
  about athletes before WebNLG), in infobox lines plus prose that uses the common wording of each
  relation and wordings the task references never use. The task's rarer phrasings are learned only
  from task data, so out-of-domain inputs are genuinely harder.

Everything is a pure function of the seed, so tasks and the pretrained LM are reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

WORLD_VERSION = "2"

_SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "ten",
    "sa",
    "lo",
    "vi",
    "dar",
    "bel",
    "mor",
    "en",
    "ta",
    "ri",
    "os",
    "ul",
    "fa",
    "ne",
    "gor",
    "li",
    "an",
    "be",
    "ko",
    "sil",
    "var",
    "tor",
    "ha",
    "ze",
    "mon",
    "dra",
    "pel",
    "qui",
    "sor",
    "ven",
    "lu",
    "ab",
    "el",
    "ka",
    "ni",
    "tho",
    "mar",
    "ly",
    "ga",
    "ru",
    "de",
    "wyn",
]
_FIRST = [
    "Ada",
    "Bram",
    "Cora",
    "Dario",
    "Elin",
    "Fenna",
    "Goran",
    "Hala",
    "Ivo",
    "Jana",
    "Kemal",
    "Lida",
    "Marek",
    "Nadia",
    "Orin",
    "Petra",
    "Quin",
    "Rosa",
    "Soren",
    "Talia",
    "Ugo",
    "Vera",
    "Wim",
    "Xenia",
    "Yusuf",
    "Zora",
]
_COUNTRIES = [
    "Avalia",
    "Brenmark",
    "Corvania",
    "Dresland",
    "Estoria",
    "Fennick",
    "Galdor",
    "Hesperia",
]
_ADJECTIVES = [
    "Silent",
    "Golden",
    "Broken",
    "Hidden",
    "Crimson",
    "Endless",
    "Quiet",
    "Burning",
    "Wandering",
    "Frozen",
]
_NOUNS = [
    "River",
    "Crown",
    "Garden",
    "Mirror",
    "Harbor",
    "Lantern",
    "Forest",
    "Tower",
    "Voyage",
    "Winter",
]
_ANIMALS = ["Falcons", "Wolves", "Rovers", "Bears", "Comets", "Tigers", "Ravens", "Mariners"]


def _word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def _lexicon(tag: str, size: int) -> tuple[str, ...]:
    """A fixed list of invented words. Names are drawn from small lexicons so each word is
    frequent enough to become one BPE token: a small LM copies single tokens from its input far
    sooner than it learns to copy arbitrary multi-token strings."""
    rng, words = random.Random(f"lexicon:{tag}"), set()
    while len(words) < size:
        words.add(_word(rng, 2))
    return tuple(sorted(words))


_PLACES = _lexicon("places", 160)
_SURNAMES = _lexicon("surnames", 100)
_BRANDS = _lexicon("brands", 40)


def person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_SURNAMES)}"


def city(rng: random.Random) -> str:
    return rng.choice(_PLACES)


def _year(lo: int, hi: int):
    return lambda rng: str(rng.randint(lo, hi))


def _number(lo: int, hi: int, unit: str = ""):
    return lambda rng: f"{rng.randint(lo, hi)}{' ' + unit if unit else ''}"


def _choice(*options: str):
    return lambda rng: rng.choice(options)


@dataclass(frozen=True)
class Relation:
    """A typed attribute. `task` phrasings appear in task references; the pretraining corpus uses
    `task[0]` (the common wording) and `prose` (wordings the references never use). A phrasing is
    a verb phrase with `{o}` for the value, so facts about one subject aggregate into a sentence.
    """

    name: str
    value: object  # Callable[[random.Random], str]
    task: tuple[str, ...]
    prose: tuple[str, ...]
    by_value: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)

    def phrasings(self, value: str, for_task: bool) -> tuple[str, ...]:
        task, prose = self.by_value.get(value, (self.task, self.prose))
        return task if for_task else (task[0], *prose)


@dataclass(frozen=True)
class Domain:
    name: str
    noun: str
    pronoun: str
    entity: object  # Callable[[random.Random], str]
    relations: tuple[Relation, ...]


R = Relation
DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in [
        Domain(
            "City",
            "city",
            "It",
            city,
            (
                R(
                    "country",
                    _choice(*_COUNTRIES),
                    ("is located in {o}", "is a city in {o}", "lies in the country of {o}"),
                    ("belongs to {o}", "sits within {o}"),
                ),
                R(
                    "population",
                    _number(20, 900, "thousand"),
                    ("has a population of {o}", "is home to {o} people", "has {o} inhabitants"),
                    ("counts {o} residents",),
                ),
                R(
                    "leaderName",
                    person,
                    ("is led by {o}", "has {o} as its leader", "is governed by mayor {o}"),
                    ("answers to mayor {o}",),
                ),
                R(
                    "foundingYear",
                    _year(800, 1900),
                    ("was founded in {o}", "was established in {o}", "dates back to {o}"),
                    ("has existed since {o}",),
                ),
            ),
        ),
        Domain(
            "University",
            "university",
            "It",
            lambda rng: f"University of {city(rng)}",
            (
                R(
                    "city",
                    city,
                    ("is located in {o}", "is based in the city of {o}", "has its campus in {o}"),
                    ("stands in {o}",),
                ),
                R(
                    "established",
                    _year(1400, 1990),
                    ("was established in {o}", "was founded in {o}", "opened its doors in {o}"),
                    ("has taught students since {o}",),
                ),
                R(
                    "numberOfStudents",
                    _number(2, 60, "thousand"),
                    ("has {o} students", "enrolls {o} students", "is attended by {o} students"),
                    ("teaches {o} learners",),
                ),
                R(
                    "rector",
                    person,
                    ("is headed by rector {o}", "has {o} as its rector", "is led by {o}"),
                    ("is run by {o}",),
                ),
            ),
        ),
        Domain(
            "Airport",
            "airport",
            "It",
            lambda rng: f"{city(rng)} International Airport",
            (
                R(
                    "cityServed",
                    city,
                    ("serves the city of {o}", "serves {o}", "is the airport of {o}"),
                    ("brings travellers to {o}",),
                ),
                R(
                    "runwayLength",
                    _number(1200, 4200, "metres"),
                    (
                        "has a runway length of {o}",
                        "has a runway that is {o} long",
                        "has a {o} runway",
                    ),
                    ("offers a strip of {o}",),
                ),
                R(
                    "elevation",
                    _number(2, 900, "metres"),
                    (
                        "is {o} above sea level",
                        "has an elevation of {o}",
                        "lies at an altitude of {o}",
                    ),
                    ("sits {o} up",),
                ),
                R(
                    "operator",
                    lambda rng: f"{rng.choice(_BRANDS)} Airways",
                    ("is operated by {o}", "is run by {o}", "has {o} as its operator"),
                    ("is managed by {o}",),
                ),
            ),
        ),
        Domain(
            "WrittenWork",
            "book",
            "It",
            lambda rng: f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} of {city(rng)}",
            (
                R(
                    "author",
                    person,
                    ("was written by {o}", "is a book by {o}", "was authored by {o}"),
                    ("came from the pen of {o}",),
                ),
                R(
                    "publicationYear",
                    _year(1700, 2020),
                    ("was published in {o}", "came out in {o}", "was released in {o}"),
                    ("first appeared in print in {o}",),
                ),
                R(
                    "genre",
                    _choice("mystery", "science fiction", "poetry", "history", "romance"),
                    ("is a {o} book", "belongs to the {o} genre", "is a work of {o}"),
                    ("is shelved under {o}",),
                ),
                R(
                    "numberOfPages",
                    _number(90, 900, "pages"),
                    ("has {o}", "is {o} long", "runs to {o}"),
                    ("fills {o}",),
                ),
            ),
        ),
        Domain(
            "SportsTeam",
            "team",
            "It",
            lambda rng: f"{city(rng)} {rng.choice(_ANIMALS)}",
            (
                R(
                    "ground",
                    lambda rng: f"{rng.choice(_BRANDS)} Stadium",
                    ("plays at {o}", "has its home ground at {o}", "plays its home games at {o}"),
                    ("hosts rivals at {o}",),
                ),
                R(
                    "league",
                    _choice("Premier League", "Second Division", "Northern Cup", "Coastal League"),
                    ("competes in the {o}", "plays in the {o}", "is a member of the {o}"),
                    ("fights for points in the {o}",),
                ),
                R(
                    "manager",
                    person,
                    ("is managed by {o}", "has {o} as its manager", "is coached by {o}"),
                    ("takes orders from {o}",),
                ),
                R(
                    "founded",
                    _year(1860, 2010),
                    ("was founded in {o}", "was formed in {o}", "has existed since {o}"),
                    ("first took the field in {o}",),
                ),
            ),
        ),
        Domain(
            "Building",
            "building",
            "It",
            lambda rng: f"{city(rng)} {rng.choice(['Tower', 'Hall', 'Palace', 'House'])}",
            (
                R(
                    "location",
                    city,
                    ("is located in {o}", "stands in {o}", "can be found in {o}"),
                    ("rises over {o}",),
                ),
                R(
                    "architect",
                    person,
                    (
                        "was designed by {o}",
                        "has {o} as its architect",
                        "was planned by architect {o}",
                    ),
                    ("was drawn up by {o}",),
                ),
                R(
                    "floorCount",
                    _number(2, 90, "floors"),
                    ("has {o}", "is {o} high", "rises {o}"),
                    ("counts {o}",),
                ),
                R(
                    "completionDate",
                    _year(1500, 2020),
                    ("was completed in {o}", "was finished in {o}", "was built in {o}"),
                    ("opened in {o}",),
                ),
            ),
        ),
        Domain(
            "Athlete",
            "athlete",
            "This athlete",
            person,
            (
                R(
                    "birthPlace",
                    city,
                    ("was born in {o}", "is a native of {o}", "comes from {o}"),
                    ("grew up in {o}",),
                ),
                R(
                    "club",
                    lambda rng: f"{city(rng)} {rng.choice(_ANIMALS)}",
                    ("plays for {o}", "is a member of {o}", "is on the team {o}"),
                    ("wears the shirt of {o}",),
                ),
                R(
                    "position",
                    _choice("goalkeeper", "defender", "midfielder", "forward"),
                    ("plays as a {o}", "is a {o}", "plays in the {o} position"),
                    ("lines up as a {o}",),
                ),
                R(
                    "birthYear",
                    _year(1960, 2004),
                    ("was born in {o}", "was born in the year {o}", "has a birth year of {o}"),
                    ("arrived in the world in {o}",),
                ),
            ),
        ),
        Domain(
            "CelestialBody",
            "planet",
            "It",
            lambda rng: f"{city(rng)}-{rng.randint(2, 99)}",
            (
                R(
                    "discoverer",
                    person,
                    ("was discovered by {o}", "was found by {o}", "has {o} as its discoverer"),
                    ("was first spotted by {o}",),
                ),
                R(
                    "discovered",
                    _year(1780, 2020),
                    ("was discovered in {o}", "was found in {o}", "was first observed in {o}"),
                    ("entered the catalogues in {o}",),
                ),
                R(
                    "orbitalPeriod",
                    _number(20, 9000, "days"),
                    (
                        "has an orbital period of {o}",
                        "orbits its star every {o}",
                        "takes {o} to complete an orbit",
                    ),
                    ("circles its sun in {o}",),
                ),
                R(
                    "temperature",
                    _number(40, 700, "kelvins"),
                    ("has a temperature of {o}", "has a surface temperature of {o}", "is {o} warm"),
                    ("measures {o}",),
                ),
            ),
        ),
        Domain(
            "Politician",
            "politician",
            "This politician",
            person,
            (
                R(
                    "party",
                    lambda rng: f"{rng.choice(_BRANDS)} Party",
                    ("is a member of the {o}", "belongs to the {o}", "represents the {o}"),
                    ("campaigns for the {o}",),
                ),
                R(
                    "office",
                    _choice("mayor", "senator", "minister", "governor"),
                    ("serves as {o}", "holds the office of {o}", "works as a {o}"),
                    ("was sworn in as {o}",),
                ),
                R(
                    "birthPlace",
                    city,
                    ("was born in {o}", "is a native of {o}", "comes from {o}"),
                    ("grew up in {o}",),
                ),
                R(
                    "spouse",
                    person,
                    ("is married to {o}", "has {o} as a spouse", "is the spouse of {o}"),
                    ("shares a home with {o}",),
                ),
            ),
        ),
        Domain(
            "MeanOfTransportation",
            "vehicle",
            "It",
            lambda rng: (
                f"{rng.choice(_BRANDS)} {rng.choice(['X', 'GT', 'S', 'Mk'])}{rng.randint(1, 9)}"
            ),
            (
                R(
                    "manufacturer",
                    lambda rng: f"{rng.choice(_BRANDS)} Motors",
                    ("is made by {o}", "is manufactured by {o}", "is a product of {o}"),
                    ("rolls out of the {o} works",),
                ),
                R(
                    "engine",
                    _choice("diesel", "electric", "petrol", "hybrid"),
                    ("has a {o} engine", "runs on a {o} engine", "is powered by a {o} engine"),
                    ("burns {o} power",),
                ),
                R(
                    "topSpeed",
                    _number(90, 400, "km per hour"),
                    ("has a top speed of {o}", "can reach {o}", "goes as fast as {o}"),
                    ("tops out at {o}",),
                ),
                R(
                    "productionStartYear",
                    _year(1950, 2024),
                    (
                        "was first produced in {o}",
                        "went into production in {o}",
                        "has been built since {o}",
                    ),
                    ("left the line in {o}",),
                ),
            ),
        ),
    ]
}

RESTAURANT = Domain(
    "Restaurant",
    "restaurant",
    "It",
    lambda rng: f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
    (
        R(
            "eatType",
            _choice("restaurant", "pub", "coffee shop"),
            ("is a {o}", "is a {o}", "is a {o}"),
            ("operates as a {o}",),
        ),
        R(
            "food",
            _choice("Italian", "French", "Chinese", "Japanese", "English", "Indian"),
            ("serves {o} food", "offers {o} cuisine", "has {o} food"),
            ("cooks {o} dishes",),
        ),
        R(
            "priceRange",
            _choice("cheap", "moderate", "high"),
            ("has a {o} price range", "is {o} in price", "has {o} prices"),
            ("charges {o} amounts",),
        ),
        R(
            "customerRating",
            _choice("low", "average", "high"),
            ("has a {o} customer rating", "is rated {o} by customers", "has {o} ratings"),
            ("earns {o} marks from diners",),
        ),
        R(
            "area",
            _choice("city centre", "riverside"),
            ("is in the {o}", "is located in the {o} area", "can be found in the {o}"),
            ("sits in the {o}",),
        ),
        R(
            "familyFriendly",
            _choice("yes", "no"),
            (),
            (),
            by_value={
                "yes": (
                    ("is family friendly", "is kid friendly", "welcomes children"),
                    ("suits families",),
                ),
                "no": (
                    ("is not family friendly", "is not kid friendly", "does not welcome children"),
                    ("is for adults only",),
                ),
            },
        ),
        R(
            "near",
            lambda rng: f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
            ("is near {o}", "is close to {o}", "is located near {o}"),
            ("neighbours {o}",),
        ),
    ),
)

SEEN_DOMAINS = ("City", "University", "Airport", "WrittenWork", "SportsTeam", "Building")
UNSEEN_DOMAINS = ("Athlete", "CelestialBody", "Politician", "MeanOfTransportation")
ALL_DOMAINS = {**DOMAINS, RESTAURANT.name: RESTAURANT}


@dataclass(frozen=True)
class Entity:
    name: str
    domain: str
    facts: tuple[tuple[str, str], ...]  # (relation, value), one per relation of the domain


def make_entity(domain: Domain, rng: random.Random) -> Entity:
    facts = tuple((rel.name, rel.value(rng)) for rel in domain.relations)  # type: ignore[operator]
    return Entity(domain.entity(rng), domain.name, facts)  # type: ignore[operator]


def realize(
    entity: Entity, facts: list[tuple[str, str]], rng: random.Random, for_task: bool = True
) -> str:
    """A text stating every fact: random order, phrasing per fact, and grouping into sentences.

    The first sentence names the subject; later ones refer back with a pronoun or the domain noun.
    """
    domain = ALL_DOMAINS[entity.domain]
    relations = {rel.name: rel for rel in domain.relations}
    facts = list(facts)
    rng.shuffle(facts)
    phrases = [rng.choice(relations[r].phrasings(v, for_task)).format(o=v) for r, v in facts]
    sentences = []
    while phrases:
        take = min(len(phrases), rng.choice((1, 2, 2, 3)))
        group, phrases = phrases[:take], phrases[take:]
        clause = group[0] if take == 1 else ", ".join(group[:-1]) + " and " + group[-1]
        if not sentences:
            subject = entity.name
        else:
            subject = rng.choice((domain.pronoun, f"The {domain.noun}", entity.name))
        sentences.append(f"{subject} {clause}.")
    return " ".join(sentences)


def linearize_triples(entity: Entity, facts: list[tuple[str, str]]) -> str:
    """The paper's WebNLG linearization: `subject : relation : object | ...`."""
    return " | ".join(f"{entity.name} : {r} : {v}" for r, v in facts)


def linearize_record(entity: Entity, facts: list[tuple[str, str]]) -> str:
    """The paper's E2E linearization: `name : X | slot : value | ...`."""
    return " | ".join([f"name : {entity.name}", *(f"{r} : {v}" for r, v in facts)])


def infobox(entity: Entity) -> str:
    return f"{entity.name} ({entity.domain}) " + " ; ".join(f"{r} = {v}" for r, v in entity.facts)


def pretraining_corpus(seed: int, entities_per_domain: int, infobox_share: float) -> list[str]:
    """Documents about entities disjoint from the tasks': an infobox line, then prose (or prose
    alone), covering every domain. Infoboxes tie relation names to their wordings, as web text
    mixes infoboxes and prose."""
    rng = random.Random(f"corpus:{seed}")
    docs = []
    for domain in ALL_DOMAINS.values():
        for _ in range(entities_per_domain):
            entity = make_entity(domain, rng)
            facts = rng.sample(list(entity.facts), rng.randint(2, len(entity.facts)))
            prose = realize(entity, facts, rng, for_task=False)
            docs.append(f"{infobox(entity)}\n{prose}" if rng.random() < infobox_share else prose)
    rng.shuffle(docs)
    return docs
