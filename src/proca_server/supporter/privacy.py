"""Who receives a supporter's contact, and with which consent: the page's org, and the
campaign's lead org when it is another org; each copy carries its delivery and communication
consents, and one with neither is not made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Consent:
    org_id: int
    delivery: bool
    communication: bool | None  # None: the question was not asked


def consents(
    *,
    page_org_id: int,
    lead_org_id: int,
    page_delivery: bool,
    force_delivery: bool,
    opt_in: bool | None,
    lead_opt_in: bool | None,
) -> list[Consent]:
    """The collector (page owner) always; the campaign's lead org only on a partner's page.
    A consent with neither delivery nor communication gives no contact copy."""
    split = page_org_id != lead_org_id
    collector_delivery = not split or page_delivery
    out = [Consent(page_org_id, collector_delivery, opt_in)]
    if split:
        lead_delivery = not collector_delivery or force_delivery
        out.append(Consent(lead_org_id, lead_delivery, lead_opt_in))
    return [c for c in out if c.delivery or c.communication]
