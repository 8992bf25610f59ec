"""Seed a migrated database for the load tests: an org with an active key (so contacts are
really encrypted), a campaign and an action page. Prints one JSON line with their ids.

Run with the server's environment (DATABASE_URL, ...), after `python -m proca_server setup`.
BENCH_ORG_ID gives the org that id (one no other run on the shared RabbitMQ uses: its queues
are named after it); BENCH_DELIVER=1 gives it a delivery queue, `cus.N.deliver`."""

from __future__ import annotations

import asyncio
import json
import os

from nacl.public import PrivateKey

from proca_server import db
from proca_server.config import get_settings
from proca_server.models import ActionPage, Campaign, Org, PublicKey


async def main() -> None:
    engine = db.create_engine(get_settings())
    try:
        async with db.transaction(db.create_sessionmaker(engine)) as session:
            org = Org(
                name="benchorg",
                title="Bench Org",
                custom_action_deliver=os.environ.get("BENCH_DELIVER") == "1",
            )
            if os.environ.get("BENCH_ORG_ID"):
                org.id = int(os.environ["BENCH_ORG_ID"])
            session.add(org)
            await session.flush()
            private = PrivateKey.generate()
            session.add(
                PublicKey(
                    name="bench key",
                    public=bytes(private.public_key),
                    private=None,
                    active=True,
                    org_id=org.id,
                )
            )
            campaign = Campaign(name="benchcampaign", title="Bench Campaign", org_id=org.id)
            session.add(campaign)
            await session.flush()
            page = ActionPage(
                name="campaign.example.org/sign",
                locale="en",
                campaign_id=campaign.id,
                org_id=org.id,
            )
            session.add(page)
            await session.flush()
            ids = {"org": org.id, "campaign": campaign.id, "page": page.id}
    finally:
        await engine.dispose()
    print(json.dumps(ids))


if __name__ == "__main__":
    asyncio.run(main())
