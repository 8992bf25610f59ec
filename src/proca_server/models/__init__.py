"""All tables, imported here so that Alembic and the app see one metadata."""

from proca_server.models import counter as counter  # the counters' tables
from proca_server.models.action import Action
from proca_server.models.action_page import ActionPage
from proca_server.models.audit_log import AuditLog
from proca_server.models.base import Base
from proca_server.models.campaign import Campaign
from proca_server.models.confirm import Confirm
from proca_server.models.contact import Contact
from proca_server.models.donation import Donation
from proca_server.models.email_budget import TransactionalEmailUsage
from proca_server.models.email_sent import EmailSent
from proca_server.models.email_template import EmailTemplate
from proca_server.models.idempotency import IdempotencyKey
from proca_server.models.message import Message, MessageContent, SendStatus
from proca_server.models.mtt import Mtt, MttTargetCount
from proca_server.models.org import Org
from proca_server.models.preview_email import PreviewEmail
from proca_server.models.public_key import PublicKey
from proca_server.models.queue import BrokerBinding, BrokerExchange, BrokerMessage, BrokerQueue
from proca_server.models.scheduled_run import ScheduledRun
from proca_server.models.service import Service
from proca_server.models.source import Source
from proca_server.models.staffer import Staffer
from proca_server.models.supporter import Supporter
from proca_server.models.target import Target
from proca_server.models.target_email import TargetEmail
from proca_server.models.user import User
from proca_server.models.user_token import UserToken

__all__ = [
    "Action",
    "ActionPage",
    "AuditLog",
    "Base",
    "BrokerBinding",
    "BrokerExchange",
    "BrokerMessage",
    "BrokerQueue",
    "Campaign",
    "Confirm",
    "Contact",
    "Donation",
    "EmailSent",
    "EmailTemplate",
    "IdempotencyKey",
    "Message",
    "MessageContent",
    "Mtt",
    "MttTargetCount",
    "Org",
    "PreviewEmail",
    "PublicKey",
    "ScheduledRun",
    "SendStatus",
    "Service",
    "Source",
    "Staffer",
    "Supporter",
    "Target",
    "TargetEmail",
    "TransactionalEmailUsage",
    "User",
    "UserToken",
]
