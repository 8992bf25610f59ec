"""Outgoing email: the message, the backends that deliver it, and mustache templates.

Messages are composed inside a transaction and delivered after it commits (a rollback drops
them). Every backend implements `EmailBackend`: SMTP, Mailjet, SES, Brevo and HubSpot made
from an org's service (backends/), and `preview`, which keeps each message in the
`preview_emails` table for the /mailbox pages."""

from proca_server.email.backend import EmailBackend, get_backend
from proca_server.email.message import EmailMessage, format_address

__all__ = ["EmailBackend", "EmailMessage", "format_address", "get_backend"]
