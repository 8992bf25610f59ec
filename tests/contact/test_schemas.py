"""Contact input validation per contact schema: pure, no database."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proca_server.contact import eci_rules
from proca_server.contact.it_regions import REGION_BY_PREFIX, region_of_postcode
from proca_server.contact.schemas import (
    ValidatedContact,
    is_old_enough,
    is_valid_egn,
    validate_contact,
)
from proca_server.errors import BadArgument
from proca_server.models.enums import ContactSchema

SEED = "4xFc6MsafPEwc6ME"
TODAY = date(2026, 5, 20)
NUMBER = "nationality__document_number"
BAD_NUMBER = ("documentNumber", "has invalid format")
BAD_POSTCODE = ("postcode", "has invalid format")


def validate(
    schema: ContactSchema, contact: dict[str, Any], *, today: date = TODAY, seed: str = SEED
) -> ValidatedContact:
    return validate_contact(schema, contact, seed=seed, today=today)


def rejected(
    schema: ContactSchema, contact: dict[str, Any], *, today: date = TODAY
) -> tuple[str, str]:
    """The (field, message) of the error the contact is rejected with."""
    with pytest.raises(BadArgument) as info:
        validate(schema, contact, today=today)
    assert info.value.code == "bad_arg"
    assert len(info.value.field) == 1
    return info.value.field[0], info.value.message


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def with_changes(contact: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of the contact with top-level keys replaced; `address__x` / `nationality__x`
    replace one key of the nested input."""
    out = {**contact}
    for key, value in changes.items():
        if "__" in key:
            nested, inner = key.split("__")
            out[nested] = {**(out.get(nested) or {}), inner: value}
        else:
            out[key] = value
    return out


# -- basic ----------------------------------------------------------------------------------

BASIC: dict[str, Any] = {
    "first_name": "Harald",
    "last_name": "Bower",
    "email": "harhar@gmail.com",
}


def test_basic_payload_leaves_out_address_lines_when_only_country_and_postcode_given() -> None:
    result = validate(
        ContactSchema.BASIC, {**BASIC, "address": {"country": "it", "postcode": "0993"}}
    )
    assert result.payload == {
        "firstName": "Harald",
        "lastName": "Bower",
        "email": "harhar@gmail.com",
        "country": "IT",
        "postcode": "0993",
        "area": "IT",
    }
    assert result.area == "IT"
    assert (result.first_name, result.last_name, result.email) == (
        "Harald",
        "Bower",
        BASIC["email"],
    )


def test_basic_payload_nests_the_address_lines_that_were_given() -> None:
    address = {
        "country": "it",
        "postcode": "0993",
        "locality": "Warszawa",
        "street": "Kwiatowa",
        "street_number": "12A",
        "region": "",
    }
    result = validate(ContactSchema.BASIC, {**BASIC, "address": address})
    assert result.payload["address"] == {
        "locality": "Warszawa",
        "street": "Kwiatowa",
        "streetNumber": "12A",
    }
    assert result.address == "Kwiatowa 12A, 0993 Warszawa, IT"


def test_basic_without_address_has_no_area_and_no_address_line() -> None:
    result = validate(ContactSchema.BASIC, BASIC)
    assert result.payload == {"firstName": "Harald", "lastName": "Bower", "email": BASIC["email"]}
    assert result.area is None
    assert result.address is None


def test_basic_fingerprint_is_sha256_of_seed_and_email() -> None:
    result = validate(ContactSchema.BASIC, {**BASIC, "email": "  HarHar@Gmail.COM "})
    assert result.email == "harhar@gmail.com"
    assert result.fingerprint == sha(SEED + "harhar@gmail.com")
    assert len(result.fingerprint) == 32


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("Street 123", False),
        ("2+2", False),
        ("+48 (22) 123-45-67", True),
        ("+48123456789", True),
        ("+1234567890123456789012", False),
    ],
)
def test_phone_format_and_length(phone: str, ok: bool) -> None:
    contact = {**BASIC, "phone": phone}
    if ok:
        assert validate(ContactSchema.BASIC, contact).payload["phone"] == phone
    else:
        field, _ = rejected(ContactSchema.BASIC, contact)
        assert field == "phone"


def test_phone_too_long_says_so() -> None:
    assert rejected(ContactSchema.BASIC, {**BASIC, "phone": "1" * 21}) == (
        "phone",
        "should be at most 20 character(s)",
    )


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"email": None}, ("email", "can't be blank")),
        ({"email": ""}, ("email", "can't be blank")),
        ({"email": "   "}, ("email", "can't be blank")),
        ({"email": "not an email"}, ("email", "has invalid format")),
        ({"email": "a@b@c"}, ("email", "has invalid format")),
        ({"email": "a@b..c"}, ("email", "has invalid format")),
        ({"email": "x" * 60 + "@ex.org"}, ("email", "should be at most 64 character(s)")),
        ({"first_name": None, "last_name": None}, ("name", "can't be blank")),
        ({"first_name": "", "last_name": "Bower"}, ("name", "can't be blank")),
        ({"first_name": "Bob1"}, ("firstName", "has invalid format")),
        ({"last_name": "-Bower"}, ("lastName", "has invalid format")),
        ({"first_name": "H" * 65}, ("firstName", "should be at most 64 character(s)")),
        ({"last_name": "B" * 65}, ("lastName", "should be at most 64 character(s)")),
        ({"name": "N" * 129}, ("name", "should be at most 128 character(s)")),
        ({"name": "<b>Harald</b>"}, ("name", "has invalid format")),
        ({"address": {"country": "ITA"}}, ("country", "has invalid format")),
        ({"address": {"country": "1T"}}, ("country", "has invalid format")),
        ({"address": {"postcode": "12345678901"}}, ("postcode", "has invalid format")),
        ({"address": {"postcode": "12_45"}}, ("postcode", "has invalid format")),
        ({"address": {"street": "<script>"}}, ("street", "has invalid format")),
        ({"address": {"locality": "Zürich!"}}, ("locality", "has invalid format")),
        ({"address": {"street_number": "1234567"}}, ("streetNumber", "should be at most 6 character(s)")),  # noqa: E501
        ({"address": {"region": "R" * 65}}, ("region", "should be at most 64 character(s)")),
        ({"address": {"street": "S" * 129}}, ("street", "should be at most 128 character(s)")),
        ({"address": {"locality": "L" * 65}}, ("locality", "should be at most 64 character(s)")),
        ({"birth_date": "yesterday"}, ("birthDate", "is invalid")),
        ({"nationality": {"document_type": "passport"}}, ("country", "can't be blank")),
        ({"nationality": {"country": "Poland"}}, ("country", "has invalid format")),
        ({"nationality": {"country": "PL", "document_type": "ID"}}, ("documentType", "has invalid format")),  # noqa: E501
        (
            {"nationality": {"country": "PL", "document_type": "a" * 21}},
            ("documentType", "should be at most 20 character(s)"),
        ),
        (
            {"nationality": {"country": "PL", "document_number": "12/34"}},
            ("documentNumber", "has invalid format"),
        ),
        (
            {"nationality": {"country": "PL", "document_number": "9" * 33}},
            ("documentNumber", "should be at most 32 character(s)"),
        ),
    ],
)  # fmt: skip
def test_basic_rejections(changes: dict[str, Any], error: tuple[str, str]) -> None:
    assert rejected(ContactSchema.BASIC, {**BASIC, **changes}) == error


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"first_name": "Jane", "last_name": "Doe"}, ("Jane", "Doe")),
        ({"first_name": "Jane"}, ("Jane", None)),
        ({"first_name": "Jane", "last_name": ""}, ("Jane", None)),
        ({"name": "Jane"}, ("Jane", None)),
        ({"name": "  Jane  Van der Berg "}, ("Jane", "Van der Berg")),
        ({"name": "Jean-Luc Picard"}, ("Jean-Luc", "Picard")),
        ({"name": "Jane", "last_name": "Doe"}, ("Jane", "Doe")),
        ({"name": "Whatever Name", "first_name": "Jane"}, ("Jane", None)),
    ],
)
def test_name_normalisation(names: dict[str, Any], expected: tuple[str, str | None]) -> None:
    result = validate(ContactSchema.BASIC, {"email": "j@example.org", **names})
    assert (result.first_name, result.last_name) == expected
    assert result.payload["firstName"] == expected[0]
    assert result.payload.get("lastName") == expected[1]
    assert "name" not in result.payload


def test_a_full_name_whose_first_word_is_not_a_name_is_blamed_on_name() -> None:
    assert rejected(ContactSchema.BASIC, {"email": "j@example.org", "name": "Jane, Doe"}) == (
        "name",
        "has invalid format",
    )


@pytest.mark.parametrize(
    "name",
    [
        "Zoë", "Łukasz", "O\u2019Brien", "D'Arcy", "'t Hooft", "José María", "Mr. Something",
        "J.", "A", "Ľudmila", "Δήμητρα", "Сергей", "李",
    ],
)  # fmt: skip
def test_names_accept_letters_of_any_script(name: str) -> None:
    assert validate(ContactSchema.BASIC, {**BASIC, "first_name": name}).first_name == name


@pytest.mark.parametrize(
    "name", ["-Bob", "Bob-", "Bob,", "Bob1", "B0b", ".Bob", "Bob_", "Bob\tB", "Bob!", "Bob\nB"]
)
def test_names_reject_other_shapes(name: str) -> None:
    assert rejected(ContactSchema.BASIC, {**BASIC, "first_name": name}) == (
        "firstName",
        "has invalid format",
    )


def test_address_line_accepts_the_documented_punctuation() -> None:
    # Typographic quotes: \u2019 and \u2018 single, \u201c double (its closing twin is not
    # in the original's set).
    street = 'Rue de l\u2019Église (Bât. 2) & \u201cLe Parc\u201c/`x` - \u2018a\u2019, "b"'
    result = validate(ContactSchema.BASIC, {**BASIC, "address": {"street": street}})
    assert result.payload["address"] == {"street": street}


def test_an_all_empty_address_or_nationality_counts_as_absent() -> None:
    contact = {
        **BASIC,
        "address": {"country": "", "postcode": "", "locality": "", "street": ""},
        "nationality": {"country": "", "document_type": "", "document_number": ""},
    }
    result = validate(ContactSchema.BASIC, contact)
    assert result.payload == validate(ContactSchema.BASIC, BASIC).payload


def test_non_mapping_address_is_rejected() -> None:
    assert rejected(ContactSchema.BASIC, {**BASIC, "address": "Main street 1"}) == (
        "address",
        "is invalid",
    )


# -- popular initiative ---------------------------------------------------------------------

SWISS: dict[str, Any] = {
    "first_name": "Heidi",
    "last_name": "Muster",
    "email": "heidi@example.ch",
    "birth_date": date(1970, 6, 1),
    "address": {"postcode": "8001", "locality": "Zürich", "region": "ZH", "country": "CH"},
}


def test_popular_initiative_payload_and_fingerprint() -> None:
    result = validate(ContactSchema.POPULAR_INITIATIVE, SWISS)
    assert result.payload == {
        "firstName": "Heidi",
        "lastName": "Muster",
        "birthDate": "1970-06-01",
        "email": "heidi@example.ch",
        "postcode": "8001",
        "locality": "Zürich",
        "region": "ZH",
    }
    assert result.area is None
    assert result.email == "heidi@example.ch"
    assert result.fingerprint == sha(SEED + "HeidiMusterheidi@example.ch1970-06-01")


def test_popular_initiative_fingerprint_without_optional_parts() -> None:
    contact = with_changes(SWISS, last_name=None, birth_date=None)
    result = validate(ContactSchema.POPULAR_INITIATIVE, contact)
    assert result.fingerprint == sha(SEED + "Heidiheidi@example.ch")
    assert "birthDate" not in result.payload
    assert "lastName" not in result.payload


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"first_name": None}, ("firstName", "can't be blank")),
        ({"email": ""}, ("email", "can't be blank")),
        ({"address": None}, ("address", "can't be blank")),
        ({"address": {"locality": "Bern"}}, ("postcode", "can't be blank")),
        ({"address": {"postcode": "80011"}}, ("postcode", "has invalid format")),
        ({"address": {"postcode": "80A1"}}, ("postcode", "has invalid format")),
        ({"address": {"postcode": "801"}}, ("postcode", "has invalid format")),
    ],
)
def test_popular_initiative_requirements(changes: dict[str, Any], error: tuple[str, str]) -> None:
    assert rejected(ContactSchema.POPULAR_INITIATIVE, {**SWISS, **changes}) == error


def test_popular_initiative_first_name_can_come_from_name() -> None:
    contact = with_changes(SWISS, first_name=None, last_name=None, name="Heidi Muster")
    assert validate(ContactSchema.POPULAR_INITIATIVE, contact).payload["lastName"] == "Muster"


# -- ECI ------------------------------------------------------------------------------------

NAMES: dict[str, Any] = {"first_name": "Alicia", "last_name": "Witch Switch"}
AT_PASSPORT: dict[str, Any] = {
    **NAMES,
    "nationality": {"country": "AT", "document_type": "passport", "document_number": "R1234567"},
}
GR_ADDRESS: dict[str, Any] = {
    **NAMES,
    "nationality": {"country": "GR"},
    "address": {
        "street": "Exarcheia",
        "street_number": "161",
        "locality": "Athens",
        "country": "GR",
        "postcode": "12345",
    },
}


def test_eci_austrian_with_passport() -> None:
    result = validate(ContactSchema.ECI, AT_PASSPORT)
    assert result.payload == {
        "firstName": "Alicia",
        "lastName": "Witch Switch",
        "area": "AT",
        "nationality": {"country": "AT", "documentType": "passport", "documentNumber": "R1234567"},
    }
    assert result.area == "AT"
    assert result.fingerprint == sha(SEED + "AT" + "passport" + "R1234567")
    # ECI statements keep no email, not even in clear on the supporter.
    assert result.email is None


def test_eci_document_number_separators_do_not_change_the_identity() -> None:
    spaced = with_changes(AT_PASSPORT, nationality__document_number=" r 123-45.67 ")
    result = validate(ContactSchema.ECI, spaced)
    assert result.payload["nationality"]["documentNumber"] == "r1234567"
    plain = validate(
        ContactSchema.ECI, with_changes(AT_PASSPORT, nationality__document_number="r1234567")
    )
    assert result.fingerprint == plain.fingerprint


@pytest.mark.parametrize(
    ("nationality", "error"),
    [
        ({"document_number": "AB12345"}, BAD_NUMBER),
        ({"document_number": None}, ("documentNumber", "can't be blank")),
        ({"document_type": None}, ("documentType", "can't be blank")),
        ({"document_type": None, "document_number": None}, ("documentType", "can't be blank")),
        ({"document_type": "id.card"}, BAD_NUMBER),
        ({"document_type": "pesel"}, ("documentType", "is invalid")),
        ({"document_type": "personal.number"}, ("documentType", "is invalid")),
        ({"country": "US"}, ("country", "is invalid")),
        ({"country": "CH"}, ("country", "is invalid")),
    ],
)
def test_eci_austrian_document_problems(
    nationality: dict[str, Any], error: tuple[str, str]
) -> None:
    contact = {**AT_PASSPORT, "nationality": {**AT_PASSPORT["nationality"], **nationality}}
    assert rejected(ContactSchema.ECI, contact) == error


def test_eci_requires_a_nationality() -> None:
    assert rejected(ContactSchema.ECI, NAMES) == ("nationality", "can't be blank")
    assert rejected(ContactSchema.ECI, {**NAMES, "nationality": {"country": ""}}) == (
        "nationality",
        "can't be blank",
    )


def test_eci_greek_with_address() -> None:
    result = validate(ContactSchema.ECI, GR_ADDRESS)
    assert result.payload == {
        "firstName": "Alicia",
        "lastName": "Witch Switch",
        "country": "GR",
        "postcode": "12345",
        "city": "Athens",
        "street": "Exarcheia",
        "streetNumber": "161",
        "area": "GR",
        "nationality": {"country": "GR"},
    }
    assert result.address == "Exarcheia 161, 12345 Athens, GR"
    # Without a document the identity is residence country, names, birth date and postcode.
    assert result.fingerprint == sha(SEED + "GR" + "Alicia" + "Witch Switch" + "" + "12345")


def test_eci_fallback_identity_includes_the_birth_date() -> None:
    result = validate(ContactSchema.ECI, with_changes(GR_ADDRESS, birth_date=date(1980, 2, 3)))
    assert result.fingerprint == sha(SEED + "GRAliciaWitch Switch1980-02-0312345")


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ({"country": None}, ("country", "can't be blank")),
        ({"locality": ""}, ("locality", "can't be blank")),
        ({"street": None}, ("street", "can't be blank")),
        ({"postcode": None}, ("postcode", "can't be blank")),
        ({"postcode": "123"}, ("postcode", "has invalid format")),
        ({"postcode": "1234A"}, ("postcode", "has invalid format")),
    ],
)
def test_eci_greek_address_rules(address: dict[str, Any], error: tuple[str, str]) -> None:
    contact = {**GR_ADDRESS, "address": {**GR_ADDRESS["address"], **address}}
    assert rejected(ContactSchema.ECI, contact) == error


def test_eci_greek_without_any_address_misses_the_required_fields() -> None:
    assert rejected(ContactSchema.ECI, with_changes(GR_ADDRESS, address=None)) == (
        "country",
        "can't be blank",
    )


def test_eci_street_number_is_not_required() -> None:
    contact = {**GR_ADDRESS, "address": {**GR_ADDRESS["address"], "street_number": ""}}
    assert "streetNumber" not in validate(ContactSchema.ECI, contact).payload


@pytest.mark.parametrize("postcode", ["123-45", "123 45", " 12 3-45 "])
def test_eci_postcode_spaces_and_hyphens_are_stripped(postcode: str) -> None:
    contact = with_changes(GR_ADDRESS, address__postcode=postcode)
    result = validate(ContactSchema.ECI, contact)
    assert result.payload["postcode"] == "12345"
    assert result.fingerprint == validate(ContactSchema.ECI, GR_ADDRESS).fingerprint


def test_eci_greek_with_dot_in_last_name() -> None:
    assert validate(ContactSchema.ECI, with_changes(GR_ADDRESS, last_name="Mr. Something"))


def test_eci_lowercase_countries_are_upcased() -> None:
    contact = with_changes(GR_ADDRESS, nationality__country="gr", address__country="gr")
    result = validate(ContactSchema.ECI, contact)
    assert result.payload["nationality"]["country"] == "GR"
    assert result.payload["country"] == "GR"


def test_eci_french_living_in_belgium_passes_with_a_4_digit_postcode() -> None:
    contact = {
        **NAMES,
        "birth_date": date(1900, 1, 2),
        "nationality": {"country": "FR"},
        "address": {
            "country": "BE",
            "postcode": "1234",
            "locality": "Brussels",
            "street": "l'Amour Fries 11",
        },
    }
    result = validate(ContactSchema.ECI, contact)
    assert result.payload["nationality"] == {"country": "FR"}
    assert result.payload["country"] == "BE"
    assert result.area == "FR"
    # The postcode pattern is the residence country's: in France this one would fail.
    assert rejected(ContactSchema.ECI, with_changes(contact, address__country="FR")) == (
        "postcode",
        "has invalid format",
    )


def test_eci_french_requires_birth_date() -> None:
    contact = {
        **NAMES,
        "nationality": {"country": "FR"},
        "address": {"country": "FR", "postcode": "75001", "locality": "Paris", "street": "Rue"},
    }
    assert rejected(ContactSchema.ECI, contact) == ("birthDate", "can't be blank")


@pytest.mark.parametrize(
    ("postcode", "ok"),
    [("9876", True), ("1234AB", True), ("1234 ab", True), ("0123AB", False), ("1234A", False),
     ("12345", False)],
)  # fmt: skip
def test_eci_dutch_postcode(postcode: str, ok: bool) -> None:
    contact = {
        **NAMES,
        "birth_date": date(1990, 4, 28),
        "nationality": {"country": "NL"},
        "address": {
            "country": "NL", "postcode": postcode, "locality": "AMS", "street": "Some 123, 20"
        },
    }  # fmt: skip
    if ok:
        assert validate(ContactSchema.ECI, contact).payload["postcode"] == postcode.upper().replace(
            " ", ""
        )
    else:
        assert rejected(ContactSchema.ECI, contact) == ("postcode", "has invalid format")


def test_eci_belgian_id_with_its_separators() -> None:
    contact = {
        **NAMES,
        "birth_date": date(1990, 4, 28),
        "nationality": {
            "country": "BE",
            "document_type": "national.id.number",
            "document_number": "00.01.01-123.45",
        },
    }
    result = validate(ContactSchema.ECI, contact)
    assert result.payload["nationality"]["documentNumber"] == "00010112345"
    assert result.fingerprint == sha(SEED + "BE" + "national.id.number" + "00010112345")
    # Typed without its separators it is the same number.
    plain = with_changes(contact, nationality__document_number="00010112345")
    assert validate(ContactSchema.ECI, plain) == result
    bad = with_changes(contact, nationality__document_number="00.13.01-123.45")
    assert rejected(ContactSchema.ECI, bad) == ("documentNumber", "has invalid format")


def test_eci_bulgarian_id_is_checked_with_the_egn_rules() -> None:
    contact = {
        **NAMES,
        "nationality": {
            "country": "BG",
            "document_type": "personal.number",
            "document_number": "0409197132",
        },
    }
    assert validate(ContactSchema.ECI, contact).area == "BG"
    bad = with_changes(contact, nationality__document_number="0248126491")
    assert rejected(ContactSchema.ECI, bad) == ("documentNumber", "is not a valid document number")
    short = with_changes(contact, nationality__document_number="040919713")
    assert rejected(ContactSchema.ECI, short) == ("documentNumber", "has invalid format")


@pytest.mark.parametrize(
    "first_name",
    [
        "<SCRIPT>alert()",
        "'-alert(1)-'",
        "http://217.69.168.225",
        "%77%77%77%2E%6B%6F%6D%70%75%72%69%74%79%2E%64%65",
        "http://0000331.0x0000045.168.0xE1",
        "javascript:alert(1)",
        "<img src=x onerror=alert(1)>",
        "Olaf<br>",
        "www.example.com/x",
    ],
)
def test_eci_html_and_urls_in_names_are_rejected(first_name: str) -> None:
    contact = {**AT_PASSPORT, "birth_date": date(2000, 1, 1)}
    assert rejected(ContactSchema.ECI, {**contact, "first_name": first_name}) == (
        "firstName",
        "has invalid format",
    )
    assert rejected(ContactSchema.ECI, {**contact, "last_name": first_name}) == (
        "lastName",
        "has invalid format",
    )


def test_eci_overlong_postcode_and_names_are_rejected() -> None:
    contact = {
        **AT_PASSPORT,
        "birth_date": date(2000, 1, 1),
        "address": {"country": "", "postcode": "", "locality": "", "street": ""},
    }
    french = with_changes(
        contact, nationality__country="fr", address__postcode="0000-000000000000000-0000"
    )
    assert rejected(ContactSchema.ECI, french) == ("postcode", "has invalid format")
    assert rejected(ContactSchema.ECI, {**contact, "first_name": "Foo" * 2000}) == (
        "firstName",
        "should be at most 64 character(s)",
    )
    # Empty address fields are absent: an Austrian needs no address.
    assert validate(ContactSchema.ECI, contact).address is None


# Per nationality: a valid document (when the country asks for one) and a residence postcode
# of the country's shape; then one broken detail with the error it must produce.
VALID_DOCUMENTS: dict[str, tuple[str, str]] = {
    "AT": ("id.card", "1234567"),
    "BE": ("national.id.number", "85.07.30-033.28"),
    "BG": ("personal.number", "7523169263"),
    "CY": ("passport", "K12345678"),
    "CZ": ("passport", "12345678"),
    "EE": ("personal.number", "37605030299"),
    "ES": ("id.card", "12345678Z"),
    "HR": ("personal.id", "12345678901"),
    "HU": ("passport", "AB1234567"),
    "IT": ("id.card", "AB1234567"),
    "LT": ("personal.number", "38703181745"),
    "LV": ("personal.id", "120345-12345"),
    "MT": ("id.card", "123456M"),
    "PL": ("national.id.number", "44051401359"),
    "PT": ("citizens.card", "12345678 9 ZZ4"),
    "RO": ("personal.id", "1800101221144"),
    "SE": ("personal.number", "811228-9874"),
    "SI": ("personal.number", "0101006500006"),
}
VALID_POSTCODES: dict[str, str] = {
    "DE": "10115", "DK": "1050", "FI": "00100", "FR": "75001", "GR": "105 52", "LU": "1009",
    "NL": "1011 AB", "SK": "811 01", "IE": "D02 X285", "AT": "1010", "PT": "1000-001",
}  # fmt: skip
INVALID_EXAMPLES: dict[str, tuple[dict[str, Any], tuple[str, str]]] = {
    "AT": ({NUMBER: "123456"}, BAD_NUMBER),
    "BE": ({NUMBER: "85.13.30-033.28"}, BAD_NUMBER),
    "BG": ({NUMBER: "7523169264"}, ("documentNumber", "is not a valid document number")),
    "CY": ({NUMBER: "A1234567"}, BAD_NUMBER),
    "CZ": ({NUMBER: "123456"}, BAD_NUMBER),
    "DE": ({"address__postcode": "1011"}, BAD_POSTCODE),
    "DK": ({"address__postcode": "10500"}, BAD_POSTCODE),
    "EE": ({NUMBER: "3760503029"}, BAD_NUMBER),
    "ES": ({NUMBER: "1234567Z"}, BAD_NUMBER),
    "FI": ({"address__postcode": "0010"}, BAD_POSTCODE),
    "FR": ({"address__locality": None}, ("locality", "can't be blank")),
    "GR": ({"address__postcode": "1055"}, BAD_POSTCODE),
    "HR": ({"nationality__document_type": "id.card"}, ("documentType", "is invalid")),
    "HU": ({NUMBER: "A1234567"}, BAD_NUMBER),
    "IE": ({"address__street": ""}, ("street", "can't be blank")),
    "IT": ({NUMBER: "A12345"}, BAD_NUMBER),
    "LT": ({NUMBER: "3870318174"}, BAD_NUMBER),
    "LU": ({"address__postcode": "10090"}, BAD_POSTCODE),
    "LV": ({NUMBER: "1203451234"}, BAD_NUMBER),
    "MT": ({NUMBER: "123_456"}, BAD_NUMBER),
    "NL": ({"address__postcode": "0123 AB"}, BAD_POSTCODE),
    "PL": ({NUMBER: "4405140135"}, BAD_NUMBER),
    "PT": ({NUMBER: "12345678ZZ4"}, BAD_NUMBER),
    "RO": ({NUMBER: "180010122114"}, BAD_NUMBER),
    "SE": ({NUMBER: "81122-8987"}, BAD_NUMBER),
    "SI": ({NUMBER: "010100650000"}, BAD_NUMBER),
    "SK": ({"address__postcode": "711 01"}, BAD_POSTCODE),
}  # fmt: skip


def eci_example(country: str) -> dict[str, Any]:
    nationality: dict[str, Any] = {"country": country}
    if country in VALID_DOCUMENTS:
        document_type, number = VALID_DOCUMENTS[country]
        nationality |= {"document_type": document_type, "document_number": number}
    return {
        **NAMES,
        "birth_date": date(1980, 1, 1),
        "nationality": nationality,
        "address": {
            "country": country,
            "postcode": VALID_POSTCODES.get(country, "12345"),
            "locality": "Town",
            "street": "Main street",
            "street_number": "1a",
        },
    }


def test_the_country_tables_cover_the_27_member_states() -> None:
    assert len(eci_rules.COUNTRIES) == 27
    assert set(eci_rules.REQUIRED_FIELDS) == set(eci_rules.COUNTRIES)
    assert set(INVALID_EXAMPLES) == set(eci_rules.COUNTRIES)
    documented = {
        country
        for country, fields in eci_rules.REQUIRED_FIELDS.items()
        if set(fields) & set(eci_rules.DOCUMENT_TYPES)
    }
    assert documented == set(VALID_DOCUMENTS)


@pytest.mark.parametrize("country", eci_rules.COUNTRIES)
def test_eci_each_country_accepts_a_valid_statement(country: str) -> None:
    result = validate(ContactSchema.ECI, eci_example(country))
    assert result.area == country
    assert result.payload["nationality"]["country"] == country
    assert " " not in result.payload["postcode"] and "-" not in result.payload["postcode"]
    if country in VALID_DOCUMENTS:
        document_type, number = VALID_DOCUMENTS[country]
        stripped = number.replace(" ", "").replace(".", "").replace("-", "")
        assert result.fingerprint == sha(SEED + country + document_type + stripped)


@pytest.mark.parametrize("country", eci_rules.COUNTRIES)
def test_eci_each_country_rejects_its_invalid_example(country: str) -> None:
    changes, error = INVALID_EXAMPLES[country]
    assert rejected(ContactSchema.ECI, with_changes(eci_example(country), **changes)) == error


@pytest.mark.parametrize("country", eci_rules.COUNTRIES)
def test_eci_each_country_requires_its_personal_fields(country: str) -> None:
    required = eci_rules.REQUIRED_FIELDS[country]
    for field, input_key, ec_name in [
        ("firstName", "first_name", "full.first.names"),
        ("lastName", "last_name", "family.names"),
        ("birthDate", "birth_date", "date.of.birth"),
    ]:
        contact = with_changes(eci_example(country), **{input_key: None})
        if ec_name in required:
            assert rejected(ContactSchema.ECI, contact) == (field, "can't be blank")
        else:
            assert validate(ContactSchema.ECI, contact)


@pytest.mark.parametrize("country", eci_rules.COUNTRIES)
def test_eci_each_country_requires_its_address_fields(country: str) -> None:
    required = eci_rules.REQUIRED_FIELDS[country]
    for field, input_key, ec_name in [
        ("country", "country", "country"),
        ("locality", "locality", "city"),
        ("postcode", "postcode", "postal.code"),
        ("street", "street", "street"),
    ]:
        contact = with_changes(eci_example(country), **{f"address__{input_key}": None})
        if ec_name in required:
            assert rejected(ContactSchema.ECI, contact) == (field, "can't be blank")
        else:
            assert validate(ContactSchema.ECI, contact)


@pytest.mark.parametrize(
    ("country", "limit"),
    [("AT", 16), ("DE", 16), ("EE", 16), ("MT", 16), ("GR", 17), ("PL", 18), ("FR", 18),
     ("IT", 18)],
)  # fmt: skip
def test_eci_minimum_age_is_reached_on_the_birthday(country: str, limit: int) -> None:
    today = date(2026, 5, 20)
    birthday = date(2026 - limit, 5, 20)
    contact = eci_example(country)
    assert validate(ContactSchema.ECI, {**contact, "birth_date": birthday}, today=today)
    day_after = date(2026 - limit, 5, 21)
    assert rejected(ContactSchema.ECI, {**contact, "birth_date": day_after}, today=today) == (
        "birthDate",
        "Age below limit",
    )
    a_year_younger = date(2026 - limit + 1, 1, 1)
    assert rejected(ContactSchema.ECI, {**contact, "birth_date": a_year_younger}, today=today)


def test_eci_age_for_someone_born_on_29_february() -> None:
    contact = {**eci_example("PL"), "birth_date": date(2008, 2, 29)}
    assert rejected(ContactSchema.ECI, contact, today=date(2026, 2, 28))
    assert validate(ContactSchema.ECI, contact, today=date(2026, 3, 1))
    assert rejected(ContactSchema.ECI, contact, today=date(2025, 3, 1))


def test_eci_future_birth_date_is_below_any_limit() -> None:
    contact = {**eci_example("AT"), "birth_date": date(2030, 1, 1)}
    assert rejected(ContactSchema.ECI, contact) == ("birthDate", "Age below limit")


def test_eci_country_without_document_rules_accepts_any_given_document() -> None:
    contact = with_changes(
        eci_example("DE"),
        nationality__document_type="passport",
        nationality__document_number="C01X00T47",
    )
    result = validate(ContactSchema.ECI, contact)
    assert result.fingerprint == sha(SEED + "DE" + "passport" + "C01X00T47")
    no_number = with_changes(contact, nationality__document_number=None)
    assert rejected(ContactSchema.ECI, no_number) == ("documentNumber", "can't be blank")


def test_eci_ignores_the_email_but_still_checks_its_format() -> None:
    result = validate(ContactSchema.ECI, {**AT_PASSPORT, "email": "alicia@example.org"})
    assert "email" not in result.payload
    assert result.email is None
    assert rejected(ContactSchema.ECI, {**AT_PASSPORT, "email": "nope"}) == (
        "email",
        "has invalid format",
    )


# -- Bulgarian personal number --------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("0409197132", True),  # 1904-09-19
        ("7523169263", True),  # 1875-03-16 (month + 20)
        ("0448126494", True),  # 2004-08-12 (month + 40)
        ("0042290000", True),  # 2000-02-29, a leap day
        ("8001010040", True),  # remainder 10 gives check digit 0
        ("0248126491", False),  # wrong check digit
        ("7523169264", False),
        ("0142290004", False),  # 2001-02-29 does not exist
        ("7501330008", False),  # 33rd day
        ("8013010005", False),  # month 13
        ("9941010001", False),  # 2099-01-01, in the future
        ("752316926", False),
        ("75231692631", False),
        ("75231692a3", False),
    ],
)
def test_egn(number: str, valid: bool) -> None:
    assert is_valid_egn(number, TODAY) is valid


def test_egn_birth_date_must_be_before_today() -> None:
    assert is_valid_egn("0541011239", date(2005, 1, 2))  # 2005-01-01
    assert not is_valid_egn("0541011239", date(2005, 1, 1))


# -- Italian citizens' initiative ----------------------------------------------------------

ITALIAN: dict[str, Any] = {
    "first_name": "Antonio",
    "last_name": "Negri",
    "birth_date": date(1999, 4, 10),
    "address": {
        "street": "Romana",
        "street_number": "161",
        "locality": "Padua",
        "country": "IT",
        "postcode": "35121",
    },
    "nationality": {"country": "IT", "document_type": "passport", "document_number": "AA5275702"},
}


@pytest.mark.parametrize(
    ("document_type", "number", "stored"),
    [
        ("passport", "AA5275702", "AA5275702"),
        ("passport", "AA 527 5702", "AA5275702"),
        ("id.card", "CA00000AA", "CA00000AA"),
        ("id.card", "CA 00000 AA", "CA00000AA"),
        ("driving.licence", "AB1234567X", "AB1234567X"),
        ("driving.licence", "AB-123 4567X", "AB1234567X"),
    ],
)
def test_it_ci_documents(document_type: str, number: str, stored: str) -> None:
    contact = with_changes(
        ITALIAN, nationality__document_type=document_type, nationality__document_number=number
    )
    result = validate(ContactSchema.IT_CI, contact)
    assert result.payload["nationality"] == {
        "country": "IT",
        "documentType": document_type,
        "documentNumber": stored,
    }
    assert result.fingerprint == sha(SEED + "IT" + document_type + stored)


def test_it_ci_payload_and_area() -> None:
    result = validate(ContactSchema.IT_CI, {**ITALIAN, "email": "antonio@example.it"})
    assert result.payload == {
        "firstName": "Antonio",
        "lastName": "Negri",
        "birthDate": "1999-04-10",
        "country": "IT",
        "postcode": "35121",
        "city": "Padua",
        "street": "Romana",
        "streetNumber": "161",
        "area": "Veneto",
        "nationality": {"country": "IT", "documentType": "passport", "documentNumber": "AA5275702"},
    }
    assert result.area == "Veneto"
    assert result.email is None


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"nationality": None}, ("nationality", "can't be blank")),
        ({"address": None}, ("address", "can't be blank")),
        ({"nationality__country": "FR"}, ("country", "is invalid")),
        ({"nationality__document_type": "personal.number"}, ("documentType", "is invalid")),
        ({"nationality__document_type": None}, ("documentType", "can't be blank")),
        ({NUMBER: ""}, ("documentNumber", "can't be blank")),
        ({NUMBER: "A12345"}, BAD_NUMBER),
        ({"address__locality": None}, ("locality", "can't be blank")),
        ({"address__street": None}, ("street", "can't be blank")),
        ({"address__postcode": None}, ("postcode", "can't be blank")),
        ({"address__country": None}, ("country", "can't be blank")),
        ({"address__country": "FR", "address__postcode": "3512"}, ("postcode", "has invalid format")),  # noqa: E501
        ({"first_name": None}, ("firstName", "can't be blank")),
        ({"last_name": None}, ("lastName", "can't be blank")),
        ({"birth_date": None}, ("birthDate", "can't be blank")),
        ({"birth_date": date(2008, 5, 21)}, ("birthDate", "Age below limit")),
        ({"email": "bad@"}, ("email", "has invalid format")),
    ],
)  # fmt: skip
def test_it_ci_rejections(changes: dict[str, Any], error: tuple[str, str]) -> None:
    assert rejected(ContactSchema.IT_CI, with_changes(ITALIAN, **changes)) == error


def test_it_ci_is_18_on_the_birthday() -> None:
    assert validate(ContactSchema.IT_CI, with_changes(ITALIAN, birth_date=date(2008, 5, 20)))


@pytest.mark.parametrize(
    ("postcode", "region"),
    [
        ("00184", "Lazio"),
        ("09124", "Sardinia"),
        ("11100", "Aosta Valley"),
        ("20121", "Lombardy"),
        ("35121", "Veneto"),
        ("39100", "Trentino-Alto Adige/Südtirol"),
        ("40121", "Emilia-Romagna"),
        ("46100", "Lombardy"),
        ("50122", "Tuscany"),
        ("75100", "Basilicata"),
        ("86100", "Molise"),
        ("90133", "Sicily"),
        ("98122", "Sicily"),
        ("49000", None),
        ("99000", None),
    ],
)
def test_it_ci_region_from_postcode_prefix(postcode: str, region: str | None) -> None:
    result = validate(ContactSchema.IT_CI, with_changes(ITALIAN, address__postcode=postcode))
    assert result.area == region
    assert result.payload.get("area") == region
    assert region_of_postcode(postcode) == region


def test_italian_region_table() -> None:
    assert region_of_postcode(None) is None
    assert region_of_postcode("") is None
    assert len(REGION_BY_PREFIX) == 93
    assert len(set(REGION_BY_PREFIX.values())) == 20
    assert all(len(prefix) == 2 and prefix.isdigit() for prefix in REGION_BY_PREFIX)


# -- properties -----------------------------------------------------------------------------

emails = st.from_regex(
    r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]{1,20}@[a-zA-Z0-9-]{1,15}(\.[a-zA-Z0-9-]{1,10}){0,2}",
    fullmatch=True,
)
padding = st.sampled_from(["", " ", "  ", "\t", " \n"])
name_letters = st.characters(categories=["Lu", "Ll", "Lo"])
names = st.builds(
    lambda head, middle, tail: head + middle + tail,
    name_letters,
    st.text(alphabet=st.one_of(name_letters, st.sampled_from(list(" ,'\u2019.-"))), max_size=20),
    st.one_of(name_letters, st.just(".")),
)
seeds = st.text(max_size=20)


@given(email=emails, before=padding, after=padding, seed=seeds)
def test_basic_fingerprint_is_sha256_of_seed_and_the_normalised_email(
    email: str, before: str, after: str, seed: str
) -> None:
    result = validate(
        ContactSchema.BASIC, {"first_name": "Ann", "email": before + email + after}, seed=seed
    )
    assert result.fingerprint == hashlib.sha256((seed + email.strip().lower()).encode()).digest()
    assert len(result.fingerprint) == 32
    again = validate(ContactSchema.BASIC, {"first_name": "Zed", "email": email.upper()}, seed=seed)
    assert again.fingerprint == result.fingerprint


def as_input(payload: dict[str, Any]) -> dict[str, Any]:
    """The snake_case ContactInput that carries a basic payload back in."""
    lines = payload.get("address", {})
    return {
        "first_name": payload.get("firstName"),
        "last_name": payload.get("lastName"),
        "email": payload.get("email"),
        "phone": payload.get("phone"),
        "address": {
            "country": payload.get("country"),
            "postcode": payload.get("postcode"),
            "region": lines.get("region"),
            "locality": lines.get("locality"),
            "street": lines.get("street"),
            "street_number": lines.get("streetNumber"),
        },
    }


@given(
    first=names,
    last=st.one_of(st.none(), names),
    email=emails,
    pad=padding,
    phone=st.one_of(st.none(), st.from_regex(r"\+?[0-9][0-9 ()-]{0,18}", fullmatch=True)),
    country=st.one_of(st.none(), st.from_regex(r"[a-zA-Z]{2}", fullmatch=True)),
    postcode=st.one_of(st.none(), st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9 -]{0,9}", fullmatch=True)),
    locality=st.one_of(st.none(), st.text(alphabet="abcXYZ 09'\u2019,.-()/&", max_size=64)),
)
def test_basic_normalisation_is_idempotent(
    first: str,
    last: str | None,
    email: str,
    pad: str,
    phone: str | None,
    country: str | None,
    postcode: str | None,
    locality: str | None,
) -> None:
    if len(first) > 64 or (last and len(last) > 64):
        return
    contact = {
        "first_name": pad + first + pad,
        "last_name": last,
        "email": pad + email,
        "phone": phone,
        "address": {"country": country, "postcode": postcode, "locality": locality},
    }
    once = validate(ContactSchema.BASIC, contact)
    twice = validate(ContactSchema.BASIC, as_input(once.payload))
    assert twice == once
    assert validate(ContactSchema.BASIC, contact) == once


@given(
    country=st.sampled_from(eci_rules.COUNTRIES),
    first=names,
    last=names,
    postcode_pad=st.sampled_from(["", " ", "-"]),
    number_pad=st.sampled_from(["", " ", ".", "-"]),
    with_document=st.booleans(),
)
def test_eci_normalisation_is_idempotent(
    country: str,
    first: str,
    last: str,
    postcode_pad: str,
    number_pad: str,
    with_document: bool,
) -> None:
    if len(first) > 64 or len(last) > 64:
        return
    contact = eci_example(country) | {"first_name": first, "last_name": last}
    postcode = contact["address"]["postcode"]
    contact = with_changes(contact, address__postcode=postcode[:2] + postcode_pad + postcode[2:])
    if country in VALID_DOCUMENTS and with_document:
        number = contact["nationality"]["document_number"]
        contact = with_changes(
            contact, nationality__document_number=number[:3] + number_pad + number[3:]
        )
    once = validate(ContactSchema.ECI, contact)
    payload = once.payload
    fed_back = {
        "first_name": payload.get("firstName"),
        "last_name": payload.get("lastName"),
        "birth_date": date.fromisoformat(payload["birthDate"]),
        "address": {
            "country": payload.get("country"),
            "postcode": payload.get("postcode"),
            "locality": payload.get("city"),
            "street": payload.get("street"),
            "street_number": payload.get("streetNumber"),
        },
        "nationality": {
            "country": payload["nationality"]["country"],
            "document_type": payload["nationality"].get("documentType"),
            "document_number": payload["nationality"].get("documentNumber"),
        },
    }
    assert validate(ContactSchema.ECI, fed_back) == once


@given(
    text=st.text(max_size=30),
    bad=st.sampled_from(list('<>/:%=;"(){}[]@#0123456789_')),
    at=st.integers(min_value=0, max_value=30),
)
def test_names_with_markup_or_url_characters_are_always_rejected(
    text: str, bad: str, at: int
) -> None:
    name = text[:at] + bad + text[at:]
    with pytest.raises(BadArgument) as info:
        validate(ContactSchema.ECI, {**AT_PASSPORT, "first_name": name})
    assert info.value.field == ["firstName"]


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    today=st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)),
    years=st.sampled_from([16, 17, 18]),
)
def test_age_limit_matches_completed_years(birth: date, today: date, years: int) -> None:
    completed = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    assert is_old_enough(birth, today, years) is (completed >= years)


@given(seed=seeds, other=seeds)
def test_fingerprints_depend_on_the_seed_only_through_concatenation(seed: str, other: str) -> None:
    first = validate(ContactSchema.ECI, AT_PASSPORT, seed=seed)
    assert first == validate(ContactSchema.ECI, AT_PASSPORT, seed=seed)
    assert first.fingerprint == sha(seed + "ATpassportR1234567")
    if other != seed:
        assert validate(ContactSchema.ECI, AT_PASSPORT, seed=other).fingerprint != first.fingerprint
