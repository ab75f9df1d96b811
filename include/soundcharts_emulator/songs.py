"""The emulated song pools: identities, popularity lifecycles, metadata, audience.

Every region in ``POOLS`` releases ``SONGS_PER_DAY`` songs a day since
``catalog.EPOCH``; a song is an integer *key* (serial number and pool), so any
song can be rebuilt from its key alone and nothing has to be enumerated.  Its
popularity follows a lifecycle (rise, then exponential decay) drawn from the
key, and is zero outside ``LIFETIME_DAYS`` after release.  Over a two-year
window each pool holds a few thousand songs; GLOBAL songs also chart in every
country, so the same song shows up on many charts.

Song uuids are uuid-shaped: four hash-derived groups, then the key scrambled
into the last group, so ``key_from_uuid`` can decode and verify them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from soundcharts_emulator.catalog import AUDIENCE_PLATFORMS, COUNTRIES, EPOCH, atom

POOLS: tuple[str, ...] = tuple(COUNTRIES)  # GLOBAL, US, GB, FR, DE
SONGS_PER_DAY = 3
LIFETIME_DAYS = 240
_TAPER_FROM = 180
_M64 = (1 << 64) - 1
# Keys are scrambled into the last uuid group by an invertible map mod 2**48.
_KEY_BITS = (1 << 48) - 1
_KEY_FACTOR = 0x9E37_79B9_7F4B  # odd, hence invertible
_KEY_FACTOR_INVERSE = pow(_KEY_FACTOR, -1, 1 << 48)
_KEY_MASK = 0x5C3A_91D2_7E4B
PLATFORM_INDEX = {platform: i for i, platform in enumerate(AUDIENCE_PLATFORMS)}


def mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread deterministic integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def unit(x: int) -> float:
    """A uniform float in [0, 1) determined by ``x``."""
    return (mix(x) >> 11) / (1 << 53)


def _hex_digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def stable_seed(text: str) -> int:
    """A 64-bit seed from text, stable across processes (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


# -- identity ---------------------------------------------------------------------------


def song_key(pool: int, serial: int) -> int:
    return serial * len(POOLS) + pool


def pool_of(key: int) -> int:
    return key % len(POOLS)


def release_day(key: int) -> int:
    """Days since EPOCH of the song's release (= the start of its lifecycle)."""
    return key // len(POOLS) // SONGS_PER_DAY


def release_date(key: int) -> date:
    return EPOCH + timedelta(days=release_day(key))


def alive_keys(pool: int, day: int) -> range:
    """Keys of ``pool`` whose lifecycle covers ``day`` (days since EPOCH)."""
    first = max(0, day - LIFETIME_DAYS + 1) * SONGS_PER_DAY
    last = (day + 1) * SONGS_PER_DAY
    return range(song_key(pool, first), song_key(pool, last), len(POOLS))


def song_uuid(key: int) -> str:
    digest = _hex_digest(f"soundcharts-emulator-song-{key}")
    scrambled = (key * _KEY_FACTOR & _KEY_BITS) ^ _KEY_MASK
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{scrambled:012x}"


def key_from_uuid(uuid: str) -> int | None:
    """The key of a uuid made by ``song_uuid``; None when it is not one of ours."""
    try:
        scrambled = int(uuid.rsplit("-", 1)[-1], 16)
        key = (scrambled ^ _KEY_MASK) * _KEY_FACTOR_INVERSE & _KEY_BITS
    except ValueError:
        return None
    return key if song_uuid(key) == uuid.lower() else None


# -- popularity -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lifecycle:
    release: int
    peak: float
    rise: int
    half_life: float
    platform_affinity: tuple[float, ...]  # in AUDIENCE_PLATFORMS order
    country_affinity: tuple[float, ...]  # in POOLS order


@lru_cache(maxsize=65536)
def lifecycle(key: int) -> Lifecycle:
    def draw(salt: int) -> float:
        return unit(key * 1_000_003 + salt)

    # Pareto-distributed peaks: a few hits, many songs that never chart.
    peak = min(60.0, (1.0 - draw(1)) ** (-1 / 1.3))
    style = draw(2)
    if style < 0.6:
        rise = int(draw(3) * 4)  # debuts high
    elif style < 0.9:
        rise = 4 + int(draw(3) * 17)
    else:
        rise = 21 + int(draw(3) * 40)  # slow burner
    half_life = 8.0 * (90 / 8) ** draw(4)
    platforms = tuple(0.55 + 0.9 * draw(10 + i) for i in range(len(AUDIENCE_PLATFORMS)))
    countries = tuple(0.25 + 0.8 * draw(20 + i) for i in range(len(POOLS)))
    return Lifecycle(release_day(key), peak, rise, half_life, platforms, countries)


def shape(life: Lifecycle, age: int) -> float:
    """Relative popularity ``age`` days after release, in [0, 1]."""
    if age < 0 or age >= LIFETIME_DAYS:
        return 0.0
    if age < life.rise:
        value = (age + 1) / (life.rise + 1)
    else:
        value = 0.5 ** ((age - life.rise) / life.half_life)
    if age > _TAPER_FROM:  # fade out instead of vanishing from a high position
        value *= (LIFETIME_DAYS - age) / (LIFETIME_DAYS - _TAPER_FROM)
    return value


# -- metadata ---------------------------------------------------------------------------

_WORDS_A = (
    "Midnight", "Golden", "Electric", "Broken", "Neon", "Silent", "Wild", "Summer", "Velvet",
    "Crystal", "Lonely", "Burning", "Paper", "Sugar", "Cold", "Endless", "Little", "Holy",
    "Purple", "Lucky", "Dancing", "Falling", "Blue", "Hidden", "Secret", "Crazy", "Sweet",
)
_WORDS_B = (
    "Heart", "Lights", "Dreams", "Rain", "City", "Fire", "Love", "Road", "Night", "Sky",
    "Ocean", "Stars", "Lies", "Games", "Waves", "Roses", "Ghost", "Garden", "Echo", "Thunder",
    "Shadows", "Paradise", "Kisses", "Mirror", "Satellite", "Diamonds", "Tides",
)
_FIRST = (
    "Ava", "Leo", "Mila", "Noah", "Zoe", "Eli", "Nina", "Jules", "Lena", "Max", "Ines", "Omar",
    "Sara", "Theo", "Yara", "Kai", "Lou", "Mia", "Ravi", "Ada", "Finn", "Iris", "Jonas", "Rosa",
)
_LAST = (
    "Rivers", "Stone", "Moreau", "Becker", "Hayes", "Laurent", "Vogel", "Carter", "Blake",
    "Durand", "Wolf", "Parker", "Nova", "Reyes", "Frost", "Lambert", "Keller", "Quinn",
)
_GENRES = {
    "pop": ["dance pop", "electropop", "indie pop"],
    "hip-hop": ["trap", "drill", "conscious hip hop"],
    "electronic": ["house", "techno", "edm"],
    "r&b": ["contemporary r&b", "neo soul"],
    "latin": ["reggaeton", "latin pop"],
    "rock": ["indie rock", "alternative rock"],
    "country": ["contemporary country"],
}
_LABELS = (
    ("Universal Music", "major"), ("Sony Music", "major"), ("Warner Music", "major"),
    ("Northern Lights Records", "independent"), ("Blue Harbour", "independent"),
    ("Velvet Tapes", "independent"), ("Parallel Lines", "independent"),
)
_ISRC_COUNTRIES = {"GLOBAL": ("US", "GB", "SE", "CA", "KR", "PR"), "US": ("US",), "GB": ("GB",),
                   "FR": ("FR",), "DE": ("DE",)}
_LANGUAGES = {"GLOBAL": ("en", "en", "en", "es", "ko", "pt"), "US": ("en",), "GB": ("en",),
              "FR": ("fr", "fr", "en"), "DE": ("de", "de", "en")}
_ARTISTS_PER_POOL = 400


@lru_cache(maxsize=4096)
def artist(pool: int, index: int) -> dict[str, str]:
    rng = random.Random(f"artist-{pool}-{index}")
    style = rng.random()
    if style < 0.55:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    elif style < 0.8:
        name = f"The {rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)}"
    else:
        name = f"{rng.choice(_LAST).upper()}{rng.randint(1, 99)}"
    digest = _hex_digest(f"soundcharts-emulator-artist-{pool}-{index}")
    uuid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    slug = "-".join(name.lower().split()) + f"-{index}"
    return {"uuid": uuid, "slug": slug, "name": name}


@lru_cache(maxsize=65536)
def song_details(key: int) -> dict[str, object]:
    """The ``object`` of the song metadata endpoint."""
    pool = pool_of(key)
    region = POOLS[pool]
    rng = random.Random(f"song-{key}")
    adjective, noun, other = rng.choice(_WORDS_A), rng.choice(_WORDS_B), rng.choice(_WORDS_B)
    name = rng.choice((f"{adjective} {noun}", f"{noun} of {other}", f"{adjective} {noun} {other}",
                       f"{noun}", f"No More {noun}", f"{adjective} {noun} Pt. {rng.randint(2, 3)}"))
    if rng.random() < 0.15:
        name += f" ({rng.choice(('Remix', 'Acoustic', 'Live', 'Sped Up'))})"
    count = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
    indexes = sorted({int(_ARTISTS_PER_POOL * rng.random() ** 2) for _ in range(count)})
    artists = [artist(pool, i) for i in indexes]
    credit = artists[0]["name"]
    if len(artists) > 1:
        credit += " feat. " + " & ".join(a["name"] for a in artists[1:])
    released = release_date(key)
    isrc_country = rng.choice(_ISRC_COUNTRIES[region])
    registrant = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(3))
    root = rng.choice(list(_GENRES))
    label, label_type = rng.choice(_LABELS)
    return {
        "uuid": song_uuid(key),
        "name": name,
        "isrc": {
            "value": f"{isrc_country}{registrant}{released.year % 100:02d}{key % 100000:05d}",
            "countryCode": isrc_country,
        },
        "creditName": credit,
        "artists": artists,
        "releaseDate": atom(released),
        "duration": rng.randint(110, 290),
        "explicit": rng.random() < 0.3,
        "genres": [{"root": root, "sub": rng.sample(_GENRES[root], 1)}],
        "labels": [{"name": label, "type": label_type}],
        "languageCode": rng.choice(_LANGUAGES[region]),
    }


@lru_cache(maxsize=65536)
def song_summary(key: int) -> dict[str, object]:
    """The short song object embedded in rankings and audience responses (shared: do not mutate)."""
    details = song_details(key)
    return {
        "uuid": details["uuid"],
        "name": details["name"],
        "creditName": details["creditName"],
        "imageUrl": f"https://images.emulator.invalid/song/{details['uuid']}.jpg",
    }


# -- audience ---------------------------------------------------------------------------

_AUDIENCE_SCALE = {"spotify": 150_000, "apple-music": 40_000, "deezer": 12_000,
                   "shazam": 3_000, "youtube": 90_000}
_TAIL = 0.03  # catalogue plays that go on after the lifecycle ends


@lru_cache(maxsize=8192)
def _lifetime_prefix(key: int) -> tuple[float, ...]:
    life = lifecycle(key)
    total, prefix = 0.0, []
    for age in range(LIFETIME_DAYS):
        total += shape(life, age)
        prefix.append(total)
    return tuple(prefix)


def audience_value(key: int, platform: str, day: date) -> int | None:
    """Cumulative plays of the song on ``platform`` up to ``day``; None before release."""
    age = (day - release_date(key)).days
    if age < 0:
        return None
    life = lifecycle(key)
    shaped = _lifetime_prefix(key)[min(age, LIFETIME_DAYS - 1)]
    plays = life.peak * (shaped + _TAIL * (age + 1))
    affinity = life.platform_affinity[PLATFORM_INDEX[platform]]
    return int(plays * _AUDIENCE_SCALE[platform] * affinity)
