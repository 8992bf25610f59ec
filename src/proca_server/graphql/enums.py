"""GraphQL enums with the original's names (values map to the models' enums)."""

from __future__ import annotations

import enum

import strawberry

from proca_server.models import enums as m


@strawberry.enum(name="ContactSchema")
class ContactSchemaEnum(enum.Enum):
    BASIC = "basic"
    POPULAR_INITIATIVE = "popular_initiative"
    ECI = "eci"
    IT_CI = "it_ci"

    @classmethod
    def of(cls, value: m.ContactSchema) -> ContactSchemaEnum:
        return cls[value.name]

    def model(self) -> m.ContactSchema:
        return m.ContactSchema[self.name]


@strawberry.enum(name="CampaignStatus")
class CampaignStatusEnum(enum.Enum):
    DRAFT = "draft"
    LIVE = "live"
    CLOSED = "closed"
    IGNORED = "ignored"

    @classmethod
    def of(cls, value: m.CampaignStatus) -> CampaignStatusEnum:
        return cls[value.name]

    def model(self) -> m.CampaignStatus:
        return m.CampaignStatus[self.name]


@strawberry.enum(name="EmailStatus")
class EmailStatusEnum(enum.Enum):
    NONE = "none"
    DOUBLE_OPT_IN = "double_opt_in"
    BOUNCE = "bounce"
    BLOCKED = "blocked"
    SPAM = "spam"
    UNSUB = "unsub"
    INACTIVE = "inactive"
    ACTIVE = "active"

    @classmethod
    def of(cls, value: m.EmailStatus) -> EmailStatusEnum:
        return cls[value.name]


@strawberry.enum(name="ServiceName")
class ServiceNameEnum(enum.Enum):
    SES = "ses"
    SQS = "sqs"
    MAILJET = "mailjet"
    SMTP = "smtp"
    PREVIEW = "preview"
    WORDPRESS = "wordpress"
    STRIPE = "stripe"
    TEST_STRIPE = "test_stripe"
    WEBHOOK = "webhook"
    SYSTEM = "system"
    SUPABASE = "supabase"
    BREVO = "brevo"
    HUBSPOT = "hubspot"

    @classmethod
    def of_name(cls, name: str) -> ServiceNameEnum | None:
        try:
            return cls(name)
        except ValueError:
            return None


@strawberry.enum(name="Status")
class StatusEnum(enum.Enum):
    SUCCESS = "success"
    CONFIRMING = "confirming"
    NOOP = "noop"


@strawberry.enum(name="ActionPageStatus")
class ActionPageStatusEnum(enum.Enum):
    STANDBY = "standby"
    ACTIVE = "active"
    STALLED = "stalled"


@strawberry.enum(name="OutdatedTargets")
class OutdatedTargetsEnum(enum.Enum):
    KEEP = "keep"
    DISABLE = "disable"
    DELETE = "delete"
