"""Enums with the Proca server's integer values, so that a database it laid out reads the
same here (ARCHITECTURE.md, "Serving a database laid out by the original server")."""

from __future__ import annotations

import enum


class ActionProcessingStatus(enum.IntEnum):
    NEW = 0
    CONFIRMING = 1
    REJECTED = 2
    ACCEPTED = 3
    DELIVERED = 4
    REPEAT = 5


class SupporterProcessingStatus(enum.IntEnum):
    NEW = 0
    CONFIRMING = 1
    REJECTED = 2
    ACCEPTED = 3


class EmailStatus(enum.IntEnum):
    NONE = 0
    DOUBLE_OPT_IN = 1
    BOUNCE = 2
    BLOCKED = 3
    SPAM = 4
    UNSUB = 5
    INACTIVE = 6
    ACTIVE = 7


class ContactSchema(enum.IntEnum):
    BASIC = 0
    POPULAR_INITIATIVE = 1
    ECI = 2
    IT_CI = 3


class ConfirmOperation(enum.IntEnum):
    CONFIRM_ACTION = 0
    JOIN_CAMPAIGN = 1
    ADD_PARTNER = 2
    LAUNCH_PAGE = 3
    ADD_STAFFER = 4


class DonationSchema(enum.IntEnum):
    STRIPE_PAYMENT_INTENT = 0


class DonationFrequencyUnit(enum.IntEnum):
    ONE_OFF = 0
    WEEKLY = 1
    MONTHLY = 2
    DAILY = 16  # the original stores 16; kept so existing rows read back right


class CampaignStatus(enum.IntEnum):
    DRAFT = 0
    LIVE = 1
    CLOSED = 2
    IGNORED = 3


class ExternalService(enum.StrEnum):
    """Values of services.name (a string column in the original)."""

    SES = "ses"
    SQS = "sqs"
    MAILJET = "mailjet"
    SMTP = "smtp"
    PREVIEW = "preview"
    WORDPRESS = "wordpress"
    STRIPE = "stripe"
    TEST_STRIPE = "test_stripe"
    TESTMAIL = "testmail"
    WEBHOOK = "webhook"
    SUPABASE = "supabase"
    TESTDETAIL = "testdetail"
    BREVO = "brevo"
    HUBSPOT = "hubspot"
