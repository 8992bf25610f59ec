"""Contact input (GraphQL `ContactInput`): normalisation, validation, stored payload, fingerprint.

Map:

1. Common rules, whatever the schema: every text is trimmed and an empty one is absent (the
   widget sends "" for empty fields), one with a NUL or a lone surrogate is refused; names,
   email, phone, address and nationality are normalised and checked for format and length;
   name / firstName / lastName complete each other.
2. The campaign's contact schema adds its required fields and rules (`basic`,
   `popular_initiative`, `eci`, `it_ci`; the ECI tables live in `eci_rules`).
3. The result carries the payload stored (encrypted) per receiving org — camelCase keys, absent
   values left out — the cleartext candidates for the supporter row, the area, and the
   fingerprint `SHA-256(seed ‖ identity)` whose identity string depends on the schema.

The first failing rule raises one `BadArgument` naming the flat camelCase input field, with an
Ecto-style message; messages never carry the value (it is personal data).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, NoReturn, TypeVar

from proca_server.contact import eci_rules
from proca_server.contact.it_regions import region_of_postcode
from proca_server.errors import BadArgument
from proca_server.kit.storable import text_problem
from proca_server.models.enums import ContactSchema

BLANK: Final = "can't be blank"
INVALID_FORMAT: Final = "has invalid format"
INVALID: Final = "is invalid"
AGE_BELOW_LIMIT: Final = "Age below limit"
INVALID_DOCUMENT_NUMBER: Final = "is not a valid document number"

NAME_MAX: Final = 128
FIRST_NAME_MAX: Final = 64
LAST_NAME_MAX: Final = 64
EMAIL_MAX: Final = 64
PHONE_MAX: Final = 20
REGION_MAX: Final = 64
LOCALITY_MAX: Final = 64
STREET_MAX: Final = 128
STREET_NUMBER_MAX: Final = 6
DOCUMENT_TYPE_MAX: Final = 20
DOCUMENT_NUMBER_MAX: Final = 32
SUPPORTER_ADDRESS_MAX: Final = 255
"""The cleartext `supporters.address` column is a varchar(255)."""

_EMAIL = re.compile(r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*")
_PHONE = re.compile(r"[+]?[0-9 ()-]+")
_COUNTRY = re.compile(r"[A-Z]{2}")
_POSTCODE = re.compile(r"[A-Z0-9\- ]{1,10}")
_SWISS_POSTCODE = re.compile(r"[0-9]{4}")
_DOCUMENT_TYPE = re.compile(r"[a-z_.]+")
_DOCUMENT_NUMBER = re.compile(r"[A-Za-z0-9._-]+")
_DOCUMENT_NUMBER_SEPARATORS = re.compile(r"[ .-]")
_POSTCODE_SEPARATORS = re.compile(r"[ -]")
_EGN = re.compile(r"[0-9]{10}")

# Typographic quotes spelled as escapes: \u2019 right single, \u2018 left single, \u201c left
# double quotation mark.
_NAME_START: Final = frozenset("'\u2019")
_NAME_INNER: Final = frozenset(" ,'\u2019.-")
_ADDRESS_LINE_EXTRA: Final = frozenset(" 0123456789`\u201c\"\u2018\u2019',.(&/)-")

_DOCUMENT_PATTERNS: Final[dict[str, dict[str, re.Pattern[str]]]] = {
    country: {
        doc_type: re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        for doc_type, (pattern, ignore_case) in formats.items()
    }
    for country, formats in eci_rules.DOCUMENT_NUMBER_FORMATS.items()
}
_POSTCODE_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    country: re.compile(pattern) for country, pattern in eci_rules.POSTCODE_FORMATS.items()
}
_DEFAULT_POSTCODE_PATTERN: Final = re.compile(eci_rules.DEFAULT_POSTCODE_FORMAT)


@dataclass(frozen=True)
class ValidatedContact:
    payload: dict[str, Any]
    """The stored payload: camelCase JSON keys, absent values omitted."""
    fingerprint: bytes
    """32 bytes, SHA-256(seed ‖ identity), the identity string depending on the schema."""
    first_name: str | None
    last_name: str | None
    email: str | None
    address: str | None
    """One line for the cleartext supporter column, or None when no address part was given."""
    area: str | None


def validate_contact(
    schema: ContactSchema, contact: Mapping[str, Any], *, seed: str, today: date
) -> ValidatedContact:
    data = _read_contact(contact)
    if schema == ContactSchema.BASIC:
        return _basic(data, seed)
    if schema == ContactSchema.POPULAR_INITIATIVE:
        return _popular_initiative(data, seed)
    if schema == ContactSchema.ECI:
        return _eci(data, seed, today)
    if schema == ContactSchema.IT_CI:
        return _it_ci(data, seed, today)
    raise ValueError(f"unknown contact schema {schema!r}")


def fingerprint(seed: str, identity: str) -> bytes:
    return hashlib.sha256(seed.encode() + identity.encode()).digest()


def is_old_enough(birth_date: date, today: date, years: int) -> bool:
    # The birthday itself counts; someone born on 29 February comes of age on 1 March of a
    # common year (the original compares the shifted date as a tuple).
    return (today.year, today.month, today.day) >= (
        birth_date.year + years,
        birth_date.month,
        birth_date.day,
    )


def is_valid_egn(number: str, today: date) -> bool:
    """Bulgarian personal number: a real birth date before `today`, and the check digit.

    YYMMDD with the month shifted by 20 for the 1800s and by 40 for the 2000s."""
    if not _EGN.fullmatch(number):
        return False
    digits = [int(char) for char in number]
    year, month, day = (
        digits[0] * 10 + digits[1],
        digits[2] * 10 + digits[3],
        digits[4] * 10 + digits[5],
    )
    if month > 40:
        year, month = year + 2000, month - 40
    elif month > 20:
        year, month = year + 1800, month - 20
    else:
        year += 1900
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    if born >= today:
        return False
    check = sum(d * w for d, w in zip(digits, eci_rules.EGN_WEIGHTS, strict=False)) % 11
    return digits[9] == (check if check < 10 else 0)


# -- common input rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Address:
    country: str | None
    postcode: str | None
    region: str | None
    locality: str | None
    street: str | None
    street_number: str | None


@dataclass(frozen=True)
class _Nationality:
    country: str
    document_type: str | None
    document_number: str | None
    """Without spaces, dots and hyphens."""


@dataclass(frozen=True)
class _Contact:
    first_name: str | None
    last_name: str | None
    name: str | None
    email: str | None
    phone: str | None
    birth_date: date | None
    address: _Address | None
    nationality: _Nationality | None


def _fail(field: str, message: str) -> NoReturn:
    raise BadArgument(message, field=field)


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        _fail(field, INVALID)
    # what no database stores (NUL, lone surrogates) is refused whatever the field's format
    problem = text_problem(value)
    if problem is not None:
        _fail(field, problem)
    value = value.strip()
    return value or None


def _max_length(value: str | None, field: str, maximum: int) -> None:
    if value is not None and len(value) > maximum:
        _fail(field, f"should be at most {maximum} character(s)")


def _is_name(value: str) -> bool:
    # A letter or apostrophe first, a letter or dot last; in between letters, spaces,
    # apostrophes, commas, dots and hyphens. "Letter" is any Unicode letter (\p{L}), which is
    # what str.isalpha() tests. Markup, URLs and percent-encoding all fail here.
    head, tail = value[0], value[-1]
    if not (head.isalpha() or head in _NAME_START):
        return False
    if len(value) == 1:
        return True
    if not (tail.isalpha() or tail == "."):
        return False
    return all(char.isalpha() or char in _NAME_INNER for char in value[1:-1])


def _name(value: Any, field: str, maximum: int) -> str | None:
    text = _text(value, field)
    _max_length(text, field, maximum)
    if text is not None and not _is_name(text):
        _fail(field, INVALID_FORMAT)
    return text


def _address_line(value: Any, field: str, maximum: int) -> str | None:
    text = _text(value, field)
    _max_length(text, field, maximum)
    if text is not None and not all(c.isalpha() or c in _ADDRESS_LINE_EXTRA for c in text):
        _fail(field, INVALID_FORMAT)
    return text


def _nested(value: Any, field: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        _fail(field, INVALID)
    return value


def _read_names(contact: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    name = _name(contact.get("name"), "name", NAME_MAX)
    first = _name(contact.get("first_name"), "firstName", FIRST_NAME_MAX)
    last = _name(contact.get("last_name"), "lastName", LAST_NAME_MAX)
    if first is not None:
        name = name or " ".join(part for part in (first, last) if part)
    elif name is not None:
        # Only a full name: the first word is the first name, the rest the last name. A
        # separately given last name is kept when the full name has a single word.
        head, _, rest = name.partition(" ")
        first = head
        last = rest.strip() or last
        for part, maximum in ((first, FIRST_NAME_MAX), (last, LAST_NAME_MAX)):
            if part is not None and (len(part) > maximum or not _is_name(part)):
                _fail("name", INVALID_FORMAT)
    return name, first, last


def _read_birth_date(value: Any) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            _fail("birthDate", INVALID)
    _fail("birthDate", INVALID)


def _read_address(value: Any) -> _Address | None:
    fields = _nested(value, "address")
    if fields is None:
        return None
    country = _text(fields.get("country"), "country")
    if country is not None:
        country = country.upper()
        if not _COUNTRY.fullmatch(country):
            _fail("country", INVALID_FORMAT)
    postcode = _text(fields.get("postcode"), "postcode")
    if postcode is not None:
        postcode = postcode.upper()
        if not _POSTCODE.fullmatch(postcode):
            _fail("postcode", INVALID_FORMAT)
    address = _Address(
        country=country,
        postcode=postcode,
        region=_address_line(fields.get("region"), "region", REGION_MAX),
        locality=_address_line(fields.get("locality"), "locality", LOCALITY_MAX),
        street=_address_line(fields.get("street"), "street", STREET_MAX),
        street_number=_address_line(fields.get("street_number"), "streetNumber", STREET_NUMBER_MAX),
    )
    if address == _Address(None, None, None, None, None, None):
        return None
    return address


def _read_nationality(value: Any) -> _Nationality | None:
    fields = _nested(value, "nationality")
    if fields is None:
        return None
    country = _text(fields.get("country"), "country")
    document_type = _text(fields.get("document_type"), "documentType")
    typed_number = _text(fields.get("document_number"), "documentNumber")
    if country is None and document_type is None and typed_number is None:
        return None
    if country is None:
        _fail("country", BLANK)
    country = country.upper()
    if not _COUNTRY.fullmatch(country):
        _fail("country", INVALID_FORMAT)
    _max_length(document_type, "documentType", DOCUMENT_TYPE_MAX)
    if document_type is not None and not _DOCUMENT_TYPE.fullmatch(document_type):
        _fail("documentType", INVALID_FORMAT)
    number = None
    if typed_number is not None:
        number = _DOCUMENT_NUMBER_SEPARATORS.sub("", typed_number)
        _max_length(number, "documentNumber", DOCUMENT_NUMBER_MAX)
        if not _DOCUMENT_NUMBER.fullmatch(number):
            _fail("documentNumber", INVALID_FORMAT)
    return _Nationality(country, document_type, number)


def _read_contact(contact: Mapping[str, Any]) -> _Contact:
    name, first, last = _read_names(contact)
    email = _text(contact.get("email"), "email")
    if email is not None:
        email = email.lower()
        _max_length(email, "email", EMAIL_MAX)
        if not _EMAIL.fullmatch(email):
            _fail("email", INVALID_FORMAT)
    phone = _text(contact.get("phone"), "phone")
    _max_length(phone, "phone", PHONE_MAX)
    if phone is not None and not _PHONE.fullmatch(phone):
        _fail("phone", INVALID_FORMAT)
    return _Contact(
        first_name=first,
        last_name=last,
        name=name,
        email=email,
        phone=phone,
        birth_date=_read_birth_date(contact.get("birth_date")),
        address=_read_address(contact.get("address")),
        nationality=_read_nationality(contact.get("nationality")),
    )


_T = TypeVar("_T")


def _required(value: _T | None, field: str) -> _T:
    if value is None:
        _fail(field, BLANK)
    return value


def _require(values: Mapping[str, object]) -> None:
    for field, value in values.items():
        _required(value, field)


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _one_line(address: _Address | None) -> str | None:
    if address is None:
        return None
    parts = [
        " ".join(p for p in (address.street, address.street_number) if p),
        " ".join(p for p in (address.postcode, address.locality) if p),
        address.region or "",
        address.country or "",
    ]
    line = ", ".join(part for part in parts if part)
    return line[:SUPPORTER_ADDRESS_MAX] or None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- schemas --------------------------------------------------------------------------------


def _basic(data: _Contact, seed: str) -> ValidatedContact:
    _required(data.name, "name")
    first_name = _required(data.first_name, "firstName")
    email = _required(data.email, "email")
    address = data.address or _Address(None, None, None, None, None, None)
    area = address.country if address.country and len(address.country) <= 5 else None
    address_lines = _compact(
        {
            "region": address.region,
            "locality": address.locality,
            "street": address.street,
            "streetNumber": address.street_number,
        }
    )
    payload = _compact(
        {
            "firstName": first_name,
            "lastName": data.last_name,
            "email": email,
            "phone": data.phone,
            "country": address.country,
            "postcode": address.postcode,
            "address": address_lines or None,
            "area": area,
        }
    )
    return ValidatedContact(
        payload=payload,
        fingerprint=fingerprint(seed, email),
        first_name=first_name,
        last_name=data.last_name,
        email=email,
        address=_one_line(data.address),
        area=area,
    )


def _popular_initiative(data: _Contact, seed: str) -> ValidatedContact:
    first_name = _required(data.first_name, "firstName")
    email = _required(data.email, "email")
    address = _required(data.address, "address")
    postcode = _required(address.postcode, "postcode")
    if not _SWISS_POSTCODE.fullmatch(postcode):
        _fail("postcode", INVALID_FORMAT)
    birth_date = _iso(data.birth_date)
    payload = _compact(
        {
            "firstName": first_name,
            "lastName": data.last_name,
            "birthDate": birth_date,
            "email": email,
            "postcode": postcode,
            "locality": address.locality,
            "region": address.region,
        }
    )
    identity = first_name + (data.last_name or "") + email + (birth_date or "")
    return ValidatedContact(
        payload=payload,
        fingerprint=fingerprint(seed, identity),
        first_name=first_name,
        last_name=data.last_name,
        email=email,
        address=_one_line(address),
        area=None,
    )


def _laid_out(number: str, layout: str) -> str:
    if len(number) != layout.count("N"):
        return number
    characters = iter(number)
    return "".join(next(characters) if slot == "N" else slot for slot in layout)


def _document_number_matches(country: str, document_type: str, number: str) -> bool:
    pattern = _DOCUMENT_PATTERNS.get(country, {}).get(document_type)
    if pattern is None:
        return True
    candidates = [number]
    layout = eci_rules.DOCUMENT_NUMBER_LAYOUTS.get((country, document_type))
    if layout is not None:
        candidates.append(_laid_out(number, layout))
    # The EC patterns are applied as the original applied them: an unanchored search.
    return any(pattern.search(candidate) is not None for candidate in candidates)


def _check_document(
    nationality: _Nationality, required_types: tuple[str, ...], today: date
) -> None:
    country = nationality.country
    document_type = nationality.document_type
    if required_types:
        _required(document_type, "documentType")
        _required(nationality.document_number, "documentNumber")
        if document_type not in required_types:
            _fail("documentType", INVALID)
    if document_type is None:
        return
    number = _required(nationality.document_number, "documentNumber")
    if not _document_number_matches(country, document_type, number):
        _fail("documentNumber", INVALID_FORMAT)
    if country == "BG" and document_type == "personal.number" and not is_valid_egn(number, today):
        _fail("documentNumber", INVALID_DOCUMENT_NUMBER)


def _residence_address(data: _Contact, required: list[str]) -> _Address | None:
    """Check the required address fields, strip the postcode's spaces and hyphens and match it
    against the country of residence's pattern."""
    address = data.address
    present = {
        "country": address.country if address else None,
        "locality": address.locality if address else None,
        "postcode": address.postcode if address else None,
        "street": address.street if address else None,
    }
    _require({field: present[field] for field in required})
    if address is None or address.postcode is None:
        return address
    postcode = _POSTCODE_SEPARATORS.sub("", address.postcode)
    pattern = _POSTCODE_PATTERNS.get(address.country or "", _DEFAULT_POSTCODE_PATTERN)
    if not pattern.fullmatch(postcode):
        _fail("postcode", INVALID_FORMAT)
    return _Address(
        country=address.country,
        postcode=postcode,
        region=address.region,
        locality=address.locality,
        street=address.street,
        street_number=address.street_number,
    )


def _check_age(birth_date: date | None, today: date, years: int) -> None:
    if birth_date is not None and not is_old_enough(birth_date, today, years):
        _fail("birthDate", AGE_BELOW_LIMIT)


def _eci_result(
    data: _Contact,
    address: _Address | None,
    nationality: _Nationality,
    area: str | None,
    seed: str,
) -> ValidatedContact:
    residence = address or _Address(None, None, None, None, None, None)
    birth_date = _iso(data.birth_date)
    payload = _compact(
        {
            "firstName": data.first_name,
            "lastName": data.last_name,
            "birthDate": birth_date,
            "country": residence.country,
            "postcode": residence.postcode,
            "city": residence.locality,
            "street": residence.street,
            "streetNumber": residence.street_number,
            "area": area,
            "nationality": _compact(
                {
                    "country": nationality.country,
                    "documentType": nationality.document_type,
                    "documentNumber": nationality.document_number,
                }
            ),
        }
    )
    if nationality.country and nationality.document_type and nationality.document_number:
        identity = nationality.country + nationality.document_type + nationality.document_number
    else:
        identity = "".join(
            part or ""
            for part in (
                residence.country,
                data.first_name,
                data.last_name,
                birth_date,
                residence.postcode,
            )
        )
    return ValidatedContact(
        payload=payload,
        fingerprint=fingerprint(seed, identity),
        first_name=data.first_name,
        last_name=data.last_name,
        # ECI statements keep no email: nothing to keep in clear on the supporter either.
        email=None,
        address=_one_line(address),
        area=area,
    )


def _eci(data: _Contact, seed: str, today: date) -> ValidatedContact:
    nationality = _required(data.nationality, "nationality")
    country = nationality.country
    if country not in eci_rules.COUNTRIES:
        _fail("country", INVALID)
    rules = eci_rules.REQUIRED_FIELDS[country]
    # Checked in a fixed order (the EC lists are in no particular order), so the error
    # reported first does not depend on the country.
    _check_document(nationality, tuple(t for t in eci_rules.DOCUMENT_TYPES if t in rules), today)
    address = _residence_address(
        data, [field for ec, field in eci_rules.ADDRESS_FIELDS.items() if ec in rules]
    )
    personal = {
        "firstName": data.first_name,
        "lastName": data.last_name,
        "birthDate": data.birth_date,
    }
    _require(
        {field: personal[field] for ec, field in eci_rules.PERSONAL_FIELDS.items() if ec in rules}
    )
    _check_age(
        data.birth_date, today, eci_rules.AGE_LIMITS.get(country, eci_rules.DEFAULT_AGE_LIMIT)
    )
    return _eci_result(data, address, nationality, country, seed)


def _it_ci(data: _Contact, seed: str, today: date) -> ValidatedContact:
    nationality = _required(data.nationality, "nationality")
    _required(data.address, "address")
    if nationality.country != "IT":
        _fail("country", INVALID)
    document_types = eci_rules.IT_CI_EXTRA_DOCUMENT_TYPES + tuple(
        f for f in eci_rules.REQUIRED_FIELDS["IT"] if f in eci_rules.DOCUMENT_TYPES
    )
    _check_document(nationality, document_types, today)
    address = _residence_address(data, ["country", "locality", "postcode", "street"])
    _require(
        {
            "firstName": data.first_name,
            "lastName": data.last_name,
            "birthDate": data.birth_date,
        }
    )
    _check_age(data.birth_date, today, eci_rules.DEFAULT_AGE_LIMIT)
    area = region_of_postcode(address.postcode if address else None)
    return _eci_result(data, address, nationality, area, seed)
