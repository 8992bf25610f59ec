"""Queue messages: actions (`proca:action:2`, legacy `proca:action:1`), events
(`proca:event:2`) and system events, as `@proca/queue` consumers read them.

Keys are camelCase and come in a fixed order; dates are ISO 8601 UTC with
a `Z` (to the second for stored times, to the microsecond for "now", as the original
writes them). A per-org message is built from that org's contact: an encrypted contact
travels as `personalInfo` (base64url without padding), a cleartext one has its JSON keys
merged into `contact`. `encode_message` gives the compact UTF-8 JSON body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from proca_server.kit import base64url
from proca_server.models import ActionPage, Campaign, Confirm, Org, PublicKey, Supporter
from proca_server.models.enums import EmailStatus
from proca_server.processing.loader import ContactCopy, LoadedAction

ACTION_V1: Final = "proca:action:1"
ACTION_V2: Final = "proca:action:2"
EVENT_V2: Final = "proca:event:2"
SYSTEM_STAGE: Final = "system"


@dataclass(frozen=True, slots=True)
class Publication:
    """A message to publish after commit: persistent, to `exchange` with `routing_key`
    (the default exchange `""` with a queue name as routing key for requeues)."""

    exchange: str
    routing_key: str
    body: bytes = field(repr=False)


def org_exchange(org_id: int, name: str) -> str:
    """`org.N.deliver`, `org.N.confirm.supporter`, `org.N.confirm.action`, `org.N.event`."""
    return f"org.{org_id}.{name}"


def encode_message(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def iso8601(value: datetime) -> str:
    """A stored (second precision) time: `2024-05-01T12:00:00Z`."""
    value = value.astimezone(UTC)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def iso8601_now(now: datetime | None = None) -> str:
    """The current time, to the microsecond: `2024-05-01T12:00:00.123456Z`."""
    value = (now or datetime.now(UTC)).astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def routing_key(action_type: str, campaign_name: str) -> str:
    return f"{action_type}.{campaign_name}"


# -- parts shared by the action and event messages ------------------------------------------


def action_page_data(
    page: ActionPage, campaign: Campaign, org: Org, ref: str | None
) -> dict[str, Any]:
    return {
        "locale": page.locale,
        "name": page.name,
        "thankYouTemplate": page.thank_you_template,
        "thankYouTemplateRef": ref,
        "supporterConfirmTemplate": (
            page.supporter_confirm_template
            or campaign.supporter_confirm_template
            or org.supporter_confirm_template
        ),
    }


def campaign_data(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "title": campaign.title,
        "externalId": campaign.external_id,
        "contactSchema": campaign.contact_schema.name.lower(),
    }


def org_data(org: Org) -> dict[str, Any]:
    return {"name": org.name, "title": org.title}


def _action_data(loaded: LoadedAction, *, fields_key: str) -> dict[str, Any]:
    action = loaded.action
    data: dict[str, Any] = {
        "actionType": action.action_type,
        fields_key: dict(action.fields or {}),
        "createdAt": iso8601(action.inserted_at),
        "testing": action.testing,
    }
    donation = loaded.donation
    if donation is not None:
        d: dict[str, Any] = {
            "payload": donation.payload,
            "amount": donation.amount,
            "currency": donation.currency,
            "frequencyUnit": donation.frequency_unit.name.lower(),
        }
        if donation.schema is not None:
            d["schema"] = donation.schema.name.lower()
        data["donation"] = d
    return data


def tracking_data(loaded: LoadedAction) -> dict[str, Any] | None:
    s = loaded.source
    if s is None:
        return None
    return {
        "source": s.source,
        "medium": s.medium,
        "campaign": s.campaign,
        "content": s.content,
        "location": s.location,
    }


def _clear_payload(copy: ContactCopy | None) -> dict[str, Any] | None:
    if copy is None or copy.encrypted or copy.contact.payload is None:
        return None
    try:
        data = json.loads(bytes(copy.contact.payload).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def contact_data(
    supporter: Supporter, copy: ContactCopy | None, *, dupe_rank: int | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "firstName": supporter.first_name,
        "email": supporter.email,
        "contactRef": base64url.encode(supporter.fingerprint),
        "dupeRank": supporter.dupe_rank if dupe_rank is None else dupe_rank,
        "area": supporter.area,
    }
    clear = _clear_payload(copy)
    if clear is not None:
        data.update(clear)
    return data


def _key_data(key: PublicKey | None) -> dict[str, Any] | None:
    if key is None:
        return None
    return {"id": key.id, "public": base64url.encode(bytes(key.public))}


def personal_info_data(copy: ContactCopy | None) -> dict[str, Any] | None:
    if copy is None:
        return None
    payload, nonce = copy.contact.payload, copy.contact.crypto_nonce
    if payload is None or nonce is None:
        return None
    return {
        "payload": base64url.encode(bytes(payload)),
        "nonce": base64url.encode(bytes(nonce)),
        "encryptKey": _key_data(copy.public_key),
        "signKey": _key_data(copy.sign_key),
    }


def email_status_name(status: EmailStatus) -> str | None:
    return None if status is EmailStatus.NONE else status.name.lower()


def privacy_data(
    supporter: Supporter, copy: ContactCopy | None, with_consent: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if copy is not None:
        data["optIn"] = copy.contact.communication_consent
        data["givenAt"] = iso8601(copy.contact.inserted_at)
    data["emailStatus"] = email_status_name(supporter.email_status)
    data["emailStatusChanged"] = (
        iso8601(supporter.email_status_changed) if supporter.email_status_changed else None
    )
    # Without a contact for the org (wiped or never given) consent was not given to it.
    data["withConsent"] = with_consent if copy is not None else False
    return data


# -- action messages -------------------------------------------------------------------------


def schema_version(loaded: LoadedAction, org_id: int) -> int:
    org = loaded.orgs.get(org_id)
    return org.action_schema_version if org is not None else 2


def action_message(
    loaded: LoadedAction, stage: str, org_id: int, *, dupe_rank: int | None = None
) -> dict[str, Any]:
    """The message for the receiving org `org_id`, in the schema version that org reads;
    `dupe_rank` stands for the supporter's when the message is built before it is stored."""
    if schema_version(loaded, org_id) == 1:
        return action_message_v1(loaded, stage, org_id)
    return action_message_v2(loaded, stage, org_id, dupe_rank=dupe_rank)


def action_message_v2(
    loaded: LoadedAction, stage: str, org_id: int, *, dupe_rank: int | None = None
) -> dict[str, Any]:
    supporter = loaded.supporter
    if supporter is None:
        raise ValueError("an action message needs a supporter")
    copy = loaded.contact_for(org_id)
    action = loaded.action
    return {
        "schema": ACTION_V2,
        "stage": stage,
        "actionId": action.id,
        "actionPageId": action.action_page_id,
        "actionPage": action_page_data(
            loaded.page, loaded.campaign, loaded.org, loaded.thank_you_template_ref
        ),
        "campaignId": loaded.campaign.id,
        "campaign": campaign_data(loaded.campaign),
        "org": org_data(loaded.org),
        "orgId": loaded.org.id,
        "action": _action_data(loaded, fields_key="customFields"),
        "contact": contact_data(supporter, copy, dupe_rank=dupe_rank),
        "personalInfo": personal_info_data(copy),
        "privacy": privacy_data(supporter, copy, action.with_consent),
        "tracking": tracking_data(loaded),
    }


def _contact_v1(supporter: Supporter, copy: ContactCopy | None) -> dict[str, Any]:
    ref = base64url.encode(supporter.fingerprint)
    payload = copy.contact.payload if copy is not None else None
    if copy is None or payload is None:
        return {
            "ref": ref,
            "firstName": supporter.first_name,
            "email": supporter.email,
            "area": supporter.area,
            "payload": "",
        }
    if copy.encrypted:
        assert copy.contact.crypto_nonce is not None
        return {
            "ref": ref,
            "firstName": supporter.first_name,
            "email": supporter.email,
            "payload": base64url.encode(bytes(payload)),
            "nonce": base64url.encode(bytes(copy.contact.crypto_nonce)),
            "publicKey": base64url.encode(bytes(copy.public_key.public))
            if copy.public_key
            else None,
            "signKey": base64url.encode(bytes(copy.sign_key.public)) if copy.sign_key else None,
        }
    return {
        "ref": ref,
        "firstName": supporter.first_name,
        "area": supporter.area,
        "email": supporter.email,
        "payload": bytes(payload).decode("utf-8", errors="replace"),
    }


def action_message_v1(loaded: LoadedAction, stage: str, org_id: int) -> dict[str, Any]:
    supporter = loaded.supporter
    if supporter is None:
        raise ValueError("an action message needs a supporter")
    copy = loaded.contact_for(org_id)
    action, page, campaign = loaded.action, loaded.page, loaded.campaign
    privacy = None
    if action.with_consent and copy is not None:
        privacy = {
            "communication": copy.contact.communication_consent,
            "givenAt": iso8601(copy.contact.inserted_at),
        }
    return {
        "schema": ACTION_V1,
        "stage": stage,
        "actionId": action.id,
        "actionPageId": action.action_page_id,
        "campaignId": campaign.id,
        "orgId": loaded.org.id,
        "action": _action_data(loaded, fields_key="fields"),
        "actionPage": {
            "locale": page.locale,
            "name": page.name,
            "thankYouTemplate": page.thank_you_template,
            "thankYouTemplateRef": loaded.thank_you_template_ref,
        },
        "campaign": {
            "name": campaign.name,
            "title": campaign.title,
            "externalId": campaign.external_id,
        },
        "org": org_data(loaded.org),
        "contact": _contact_v1(supporter, copy),
        "privacy": privacy,
        "tracking": tracking_data(loaded),
    }


# -- events (proca:event:2) ------------------------------------------------------------------


def _event_head(event_type: str, timestamp: datetime | None) -> dict[str, Any]:
    return {
        "schema": EVENT_V2,
        "eventType": event_type,
        "timestamp": iso8601(timestamp) if timestamp is not None else iso8601_now(),
    }


def email_status_event(loaded: LoadedAction, org_id: int) -> dict[str, Any]:
    """`supporter.email_status` for the org `org_id`, built from that org's contact."""
    supporter = loaded.supporter
    if supporter is None:
        raise ValueError("an email_status event needs a supporter")
    copy = loaded.contact_for(org_id)
    action = loaded.action
    message = _event_head("email_status", supporter.updated_at)
    message.update(
        {
            "supporter": {
                "contact": contact_data(supporter, copy),
                "privacy": privacy_data(supporter, copy, action.with_consent),
                "personalInfo": personal_info_data(copy),
            },
            "campaign": campaign_data(loaded.campaign),
            "campaignId": loaded.campaign.id,
            "actionPage": action_page_data(
                loaded.page, loaded.campaign, loaded.org, loaded.thank_you_template_ref
            ),
            "actionPageId": loaded.page.id,
            "actionId": action.id,
            "action": {
                "actionType": action.action_type,
                "customFields": dict(action.fields or {}),
                "createdAt": iso8601(action.inserted_at),
                "testing": action.testing,
            },
            "tracking": tracking_data(loaded),
        }
    )
    return message


def email_status_publications(loaded: LoadedAction) -> list[Publication]:
    """One event per org holding a contact of the supporter; none for status `none`."""
    supporter = loaded.supporter
    if supporter is None or supporter.email_status is EmailStatus.NONE:
        return []
    org_ids = []
    for copy in loaded.contacts:
        org_id = copy.contact.org_id
        if org_id is not None and org_id not in org_ids:
            org_ids.append(org_id)
    return [
        Publication(
            org_exchange(org_id, "event"),
            "supporter.email_status",
            encode_message(email_status_event(loaded, org_id)),
        )
        for org_id in org_ids
    ]


def campaign_updated_event(campaign: Campaign, lead: Org) -> dict[str, Any]:
    message = _event_head("campaign_updated", campaign.updated_at)
    message.update(
        {
            "campaign": {
                "id": campaign.id,
                "name": campaign.name,
                "externalId": campaign.external_id,
                "title": campaign.title,
                "config": campaign.config or {},  # its keys as the widget wrote them
                "contactSchema": campaign.contact_schema.name.lower(),
                "org": org_data(lead),
            },
            "campaignId": campaign.id,
            "orgId": lead.id,
        }
    )
    return message


def campaign_updated_publication(campaign: Campaign, lead: Org) -> Publication:
    return Publication(
        org_exchange(lead.id, "event"),
        "system.campaign_updated",
        encode_message(campaign_updated_event(campaign, lead)),
    )


def confirm_created_event(confirm: Confirm, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` are the confirm's notification fields (confirm.emails.merge_fields):
    operation, email, message, subjectId, objectId, code, creator, links and extras."""
    message = _event_head("confirm_created", confirm.updated_at)
    message["confirm"] = dict(fields)
    return message


def confirm_created_publication(
    confirm: Confirm, fields: Mapping[str, Any], org_id: int
) -> Publication:
    """To the lead org for launch_page, to the instance org for the other operations."""
    return Publication(
        org_exchange(org_id, "event"),
        f"confirm_created.{confirm.operation.name.lower()}",
        encode_message(confirm_created_event(confirm, fields)),
    )


# -- system events (action-shaped, stage "system") -------------------------------------------


def _user_contact(email: str | None) -> dict[str, Any]:
    return {
        "firstName": email.split("@", 1)[0] if email else None,
        "email": email,
        "contactRef": None,
        "dupeRank": 0,
        "area": None,
    }


def _system_event(
    event_type: str,
    *,
    user_email: str | None,
    org: Org | None,
    campaign: Campaign | None,
    page: ActionPage | None,
    page_org: Org | None,
    now: datetime | None,
) -> dict[str, Any]:
    page_data = None
    if page is not None and campaign is not None and page_org is not None:
        page_data = action_page_data(page, campaign, page_org, None)
    return {
        "schema": ACTION_V2,
        "stage": SYSTEM_STAGE,
        "eventType": event_type,
        "actionId": None,
        "actionPageId": page.id if page is not None else None,
        "actionPage": page_data,
        "campaignId": campaign.id if campaign is not None else None,
        "campaign": campaign_data(campaign) if campaign is not None else None,
        "org": org_data(org) if org is not None else None,
        "orgId": org.id if org is not None else None,
        "action": {
            "actionType": event_type,
            "customFields": {},
            "createdAt": iso8601_now(now),
            "testing": False,
        },
        "contact": _user_contact(user_email),
        "personalInfo": None,
        "privacy": {},
        "tracking": {},
    }


def join_campaign_event(
    *,
    user_email: str | None,
    org: Org,
    campaign: Campaign,
    page: ActionPage,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A partner org (`org`, owner of `page`) joined `campaign`."""
    return _system_event(
        "join_campaign",
        user_email=user_email,
        org=org,
        campaign=campaign,
        page=page,
        page_org=org,
        now=now,
    )


def new_org_event(
    *, user_email: str | None, org: Org, now: datetime | None = None
) -> dict[str, Any]:
    return _system_event(
        "new_org", user_email=user_email, org=org, campaign=None, page=None, page_org=None, now=now
    )


def new_user_event(*, user_email: str, now: datetime | None = None) -> dict[str, Any]:
    return _system_event(
        "new_user",
        user_email=user_email,
        org=None,
        campaign=None,
        page=None,
        page_org=None,
        now=now,
    )


def system_publication(message: Mapping[str, Any], org_id: int) -> Publication:
    """join_campaign goes to the campaign lead org, new_org and new_user to the instance
    org; all of them reach the global `system.deliver` queue through `system.*`."""
    return Publication(
        org_exchange(org_id, "event"), f"system.{message['eventType']}", encode_message(message)
    )
