"""Sender rules: who an email is from, SRS rewriting and Reply-To; custom ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from proca_server.email.message import (
    EmailMessage,
    SenderRules,
    apply_sender,
    format_custom_id,
    loggable_custom_id,
    parse_custom_id,
    resolve_sender,
    srs_local_part,
    srs_timestamp,
)

KEY = "k3y"
DAY = date(2024, 1, 1)  # day 19723 since the epoch; 19723 % 1024 = 267 = 8 * 32 + 11: "IL"
EPOCH = date(1970, 1, 1)

OWN = SenderRules(
    org_name="trees",
    org_title="Save Trees",
    email_from="hello@trees.example",
    owner_email_from="hello@trees.example",
)
# the org sends through the instance org's service, verified for proca.example
BORROWING = SenderRules(
    org_name="trees",
    org_title="Save Trees",
    email_from=None,
    owner_email_from="info@instance.example",
    sending_from="mailer@proca.example",
)


def resolve(rules: SenderRules, original: str | None) -> tuple[str, str | None] | None:
    sender = resolve_sender(rules, original, srs_key=KEY, today=DAY)
    return None if sender is None else (sender.sender, sender.reply_to)


@pytest.mark.parametrize(
    ("day", "stamp"),
    [
        (DAY, "IL"),
        (EPOCH, "A"),
        (EPOCH + timedelta(days=5), "F"),
        (EPOCH + timedelta(days=1023), "77"),
        (EPOCH + timedelta(days=1024 + 31), "7"),
    ],
)
def test_srs_timestamp_is_days_mod_1024_in_base32(day: date, stamp: str) -> None:
    assert srs_timestamp(day) == stamp


def test_srs_local_part_is_prefix_hash_stamp_domain_user() -> None:
    # HMAC-SHA1("k3y", "IL" "supporter.example" "ann") = f2293b66…
    assert srs_local_part("ann", "supporter.example", key=KEY, day=DAY) == (
        "SRS0=F229=IL=supporter.example=ann"
    )
    other = srs_local_part("ann", "supporter.example", key="other", day=DAY, prefix="SRS1")
    assert other.startswith("SRS1=") and other != "SRS1=F229=IL=supporter.example=ann"


def test_no_from_uses_the_org_title_and_address() -> None:
    assert resolve(OWN, None) == ("Save Trees <hello@trees.example>", None)


def test_no_from_on_a_borrowed_backend_falls_back_to_the_owner_address() -> None:
    # an org without email_from gets the lender's; then it is the sending address's match or not
    assert resolve(BORROWING, None) == ("Save Trees <info@instance.example>", None)
    assert resolve(replace(BORROWING, owner_email_from=None), None) is None


def test_from_equal_to_the_sending_address_is_kept() -> None:
    assert resolve(OWN, "Ann <HELLO@trees.example>") == ("Ann <HELLO@trees.example>", None)
    assert resolve(BORROWING, "mailer@proca.example") == ("mailer@proca.example", None)


def test_foreign_from_is_srs_rewritten_onto_the_sending_domain_with_reply_to() -> None:
    assert resolve(BORROWING, "Ann Signer <ann@supporter.example>") == (
        "Ann Signer <SRS0=F229=IL=supporter.example=ann@proca.example>",
        "Ann Signer <ann@supporter.example>",
    )
    # without a service sending_from, the owner's address gives the domain
    assert resolve(OWN, "ann@supporter.example") == (
        "SRS0=F229=IL=supporter.example=ann@trees.example",
        "ann@supporter.example",
    )


def test_without_sender_rewrite_the_org_name_is_the_local_part() -> None:
    rules = replace(BORROWING, sender_rewrite=False)
    assert resolve(rules, "Ann <ann@supporter.example>") == (
        "Ann <trees@proca.example>",
        "Ann <ann@supporter.example>",
    )


def test_reply_to_only_when_enabled() -> None:
    rules = replace(BORROWING, reply_enabled=False)
    sender = resolve(rules, "ann@supporter.example")
    assert sender == ("SRS0=F229=IL=supporter.example=ann@proca.example", None)


def test_apply_sender_fills_an_empty_from_and_keeps_the_rest() -> None:
    message = EmailMessage(to="ann@example.com", sender="", subject="Hi", custom_id="action:1")
    done = apply_sender(message, OWN, srs_key=KEY, today=DAY)
    assert done == replace(message, sender="Save Trees <hello@trees.example>")
    mtt = replace(message, sender="ann@supporter.example")
    rewritten = apply_sender(mtt, OWN, srs_key=KEY, today=DAY)
    assert rewritten is not None and rewritten.reply_to == "ann@supporter.example"
    nobody = replace(OWN, email_from=None, owner_email_from=None)
    assert apply_sender(message, nobody, srs_key=KEY) is None


def test_custom_ids() -> None:
    assert format_custom_id("action", 42) == "action:42"
    assert parse_custom_id("action:42") == ("action", 42)
    assert parse_custom_id("mtt:7") == ("mtt", 7)
    assert parse_custom_id("user:ann@example.com") == ("user", "ann@example.com")
    assert parse_custom_id("action:x") is None and parse_custom_id(None) is None
    assert loggable_custom_id("user:ann@example.com") == "user:…"
    assert loggable_custom_id("mtt:7") == "mtt:7"
    with pytest.raises(ValueError, match="unknown custom id kind"):
        format_custom_id("other", 1)
