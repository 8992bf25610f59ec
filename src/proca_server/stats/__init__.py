"""Campaign counters (ARCHITECTURE.md, "Counters").

- `record.py`: the write path, inside the signature's transaction (`record_action`,
  `record_link`);
- `counts.py`: the read path (`campaign_stats`, cached per process for at most ~0.5 s);
- `maintenance.py`: the compactor and the reconciler, run in the background by the app.
"""

from proca_server.stats.counts import CampaignCounts, campaign_stats
from proca_server.stats.maintenance import compact, reconcile_campaign, reconcile_due
from proca_server.stats.record import record_action, record_link

__all__ = [
    "CampaignCounts",
    "campaign_stats",
    "compact",
    "reconcile_campaign",
    "reconcile_due",
    "record_action",
    "record_link",
]
