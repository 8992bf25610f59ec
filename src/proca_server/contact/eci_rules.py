"""ECI (European Citizens' Initiative) data rules, as tables.

The tables are the original server's `Proca.Contact.EciDataRules` (generated from the SQL the
European Commission released for the online collection systems), reproduced as data: per
nationality, the fields a statement of support must carry and the accepted document types, the
document-number patterns, the minimum ages; per country of residence, the postcode pattern.

The document-number patterns are kept verbatim and are applied the way the original applied
them: an unanchored *search* (a few patterns, e.g. AT `id.card`, anchor only one side of an
alternation, and ES `passport` is not anchored at all). Flags: `ignore_case` for the EC's
`pattern_i` entries.
"""

from __future__ import annotations

from typing import Final

COUNTRIES: Final[tuple[str, ...]] = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip

DOCUMENT_TYPES: Final[tuple[str, ...]] = (
    "passport",
    "id.card",
    "residence.permit",
    "personal.number",
    "personal.id",
    "national.id.number",
    "citizens.card",
)

IT_CI_EXTRA_DOCUMENT_TYPES: Final[tuple[str, ...]] = ("driving.licence",)
"""The Italian citizens' initiative also accepts a driving licence (no number pattern)."""

# EC field names per nationality: document types (any one of them) and required statement
# fields. The EC's "residence.permit" entries were removed in the original.
REQUIRED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "AT": ("passport", "id.card", "full.first.names", "family.names"),
    "BE": ("full.first.names", "family.names", "national.id.number"),
    "BG": ("personal.number", "full.first.names", "family.names"),
    "CY": ("full.first.names", "family.names", "passport", "id.card"),
    "CZ": ("family.names", "passport", "id.card", "full.first.names"),
    "DE": (
        "city", "country", "postal.code", "full.first.names", "street", "family.names",
        "street.number", "date.of.birth",
    ),
    "DK": (
        "country", "street", "postal.code", "street.number", "date.of.birth",
        "full.first.names", "family.names", "city",
    ),
    "EE": ("full.first.names", "family.names", "personal.number"),
    "ES": ("id.card", "full.first.names", "family.names", "passport"),
    "FI": (
        "street.number", "date.of.birth", "city", "country", "postal.code",
        "full.first.names", "street", "family.names",
    ),
    "FR": (
        "city", "country", "postal.code", "full.first.names", "date.of.birth",
        "family.names", "street", "street.number",
    ),
    "GR": (
        "full.first.names", "family.names", "street", "street.number", "city", "country",
        "postal.code",
    ),
    "HR": ("full.first.names", "personal.id", "family.names", "passport"),
    "HU": ("id.card", "full.first.names", "family.names", "passport", "personal.number"),
    "IE": (
        "city", "country", "postal.code", "full.first.names", "street", "family.names",
        "street.number", "date.of.birth",
    ),
    "IT": ("full.first.names", "family.names", "passport", "id.card"),
    "LT": ("full.first.names", "personal.number", "family.names"),
    "LU": (
        "postal.code", "full.first.names", "street", "family.names", "street.number",
        "date.of.birth", "city", "country",
    ),
    "LV": ("personal.id", "full.first.names", "family.names"),
    "MT": ("full.first.names", "family.names", "id.card"),
    "NL": (
        "full.first.names", "street", "family.names", "street.number", "date.of.birth",
        "city", "country", "postal.code",
    ),
    "PL": ("full.first.names", "family.names", "national.id.number"),
    "PT": ("family.names", "citizens.card", "passport", "id.card", "full.first.names"),
    "RO": ("personal.id", "passport", "id.card", "full.first.names", "family.names"),
    "SE": ("full.first.names", "family.names", "personal.number"),
    "SI": ("personal.number", "full.first.names", "family.names"),
    "SK": (
        "street", "postal.code", "city", "country", "street.number", "full.first.names",
        "family.names", "date.of.birth",
    ),
}  # fmt: skip

# Document-number patterns: country -> document type -> (pattern, ignore_case).
# A document type without an entry accepts any number (the original's empty regex).
DOCUMENT_NUMBER_FORMATS: Final[dict[str, dict[str, tuple[str, bool]]]] = {
    "AT": {
        "id.card": (r"^[0-9]{7}|[0-9]{8}$", False),
        "passport": (r"^[a-z][0-9]{7,8}$", True),
    },
    "BE": {
        "national.id.number": (
            r"^([0-9][0-9]).(0?0[1-9]|1[0-2]).([0-2]?[0-2][0-9]|3[0-1])-[0-9]{3}.[0-9]{2}$",
            False,
        ),
    },
    "BG": {"personal.number": (r"^[0-9]{10}$", False)},
    "CY": {
        "id.card": (r"^[0-9]{1,10}$", False),
        "passport": (r"^([bcej][0-9]{6})|(k[0-9]{8})|([ds]p[0-9]{7})$", True),
    },
    "CZ": {
        "id.card": (
            r"^([0-9]{9})|([0-9]{6}[a-z]{2}[0-9]{2})|([0-9]{6}[a-z]{2})|([a-z]{2}[0-9]{6})$",
            False,
        ),
        "passport": (r"^[0-9]{7,8}$", False),
    },
    "DE": {},
    "DK": {},
    "EE": {"personal.number": (r"^[0-9]{11}$", False)},
    "ES": {
        "id.card": (r"^[0-9]{8}[a-z]$", True),
        "passport": (r"[a-z0-9]*", True),
    },
    "FI": {},
    "FR": {},
    "GR": {},
    "HR": {"personal.id": (r"^[0-9]{11}$", False)},
    "HU": {
        "id.card": (
            r"^([0-9]{6}[a-z]{2})|([a-z]{2}[a-z][0-9]{6})|([a-z]{2}[a-z]{2}[0-9]{6})"
            r"|([a-z]{2}[a-z]{3}[0-9]{6})|([a-z]{2}[0-9]{6})$",
            True,
        ),
        "passport": (r"^([a-z]{2}[0-9]{6})|([a-z]{2}[0-9]{7})$", True),
        "personal.number": (r"^[0-9][0-9]{6}[0-9]{4}$", False),
    },
    "IE": {},
    "IT": {
        "id.card": (r"^([a-z]{2}[0-9]{6,8})|([0-9]{7}[a-z]{2})|([a-z]{2}[0-9]{5}[a-z]{2})$", True),
        "passport": (r"^([a-z]{2}[0-9]{7})|([a-z][0-9]{6})|([0-9]{6}[a-z])$", True),
    },
    "LT": {"personal.number": (r"^[0-9]{11}$", False)},
    "LU": {},
    "LV": {"personal.id": (r"^[0-9]{6}[0-9]{5}$", False)},
    "MT": {"id.card": (r"^[a-z0-9]*$", True)},
    "NL": {},
    "PL": {"national.id.number": (r"^[0-9]{11}$", False)},
    "PT": {
        "citizens.card": (r"^[0-9]{9}[a-z]{2}[0-9]$", True),
        "id.card": (r"^[0-9]{1,8}$", False),
        "passport": (r"^([a-z]{1}[0-9]{6})|([a-z]{2}[0-9]{6})$", True),
    },
    "RO": {
        "id.card": (r"^[a-z]{2}[0-9]{6}$", True),
        "passport": (r"^[a-z0-9]*$", True),
        "personal.id": (r"^[0-9]{13}$", False),
    },
    "SE": {
        "personal.number": (r"^([0-9]{8}-[0-9]{4}|[0-9]{6}-[0-9]{4}|[0-9]{12}|[0-9]{10})$", False),
    },
    "SI": {"personal.number": (r"^[0-9]{13}$", False)},
    "SK": {},
}

# Document numbers are stored without spaces, dots and hyphens, but the Belgian pattern spells
# its separators out; a separator-free number of the right length is laid out this way
# ("N" is one character of the number) before the pattern is tried on it as well.
DOCUMENT_NUMBER_LAYOUTS: Final[dict[tuple[str, str], str]] = {
    ("BE", "national.id.number"): "NN.NN.NN-NNN.NN",
}

# Postcode patterns by country of residence, matched after spaces and hyphens are removed
# (and the postcode upper-cased). Countries not listed take DEFAULT_POSTCODE_FORMAT. These follow
# the Proca server's current validation; its older table had the same digit rules but `.*` for
# NL and the rest.
POSTCODE_FORMATS: Final[dict[str, str]] = {
    "DE": r"^[0-9]{5}$",
    "DK": r"^[0-9]{4}$",
    "FI": r"^[0-9]{5}$",
    "FR": r"^[0-9]{5}$",
    "GR": r"^[0-9]{5}$",
    "LU": r"^[0-9]{4}$",
    "NL": r"^[1-9][0-9]{3}( ?[A-Z]{2})?$",
    "SK": r"^[089][0-9]{4}$",
}
DEFAULT_POSTCODE_FORMAT: Final = r"^[A-Z0-9]{1,10}$"

# The original table has AT, EE, MT 16 and GR 17; Germany joined the 16-year-olds in 2024 (the
# Proca server's validation lists DE with them).
AGE_LIMITS: Final[dict[str, int]] = {"AT": 16, "DE": 16, "EE": 16, "MT": 16, "GR": 17}
DEFAULT_AGE_LIMIT: Final = 18

# EC statement field -> the ContactInput field that carries it (camelCase, as in errors).
# street.number is not enforced: the original never required it (a French resident of
# Belgium passes without one).
ADDRESS_FIELDS: Final[dict[str, str]] = {
    "country": "country",
    "city": "locality",
    "postal.code": "postcode",
    "street": "street",
}
PERSONAL_FIELDS: Final[dict[str, str]] = {
    "full.first.names": "firstName",
    "family.names": "lastName",
    "date.of.birth": "birthDate",
}

# Bulgarian personal number (EGN): weights of the first nine digits for the check digit.
EGN_WEIGHTS: Final[tuple[int, ...]] = (2, 4, 8, 5, 10, 9, 7, 3, 6)
