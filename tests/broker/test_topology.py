"""The per-org topology computed from an org's configuration."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.topology import (
    Binding,
    ExchangeType,
    OrgConfig,
    load_org_config,
    org_topology,
)
from proca_server.models import Service
from tests.factories import make_campaign, make_org

N = 7


def stage_bindings(config: OrgConfig) -> set[tuple[str, str, str]]:
    return {
        (b.exchange, b.queue, b.routing_key)
        for b in org_topology(config).bindings
        if b.enabled and b.routing_key == "#"
    }


def declared(config: OrgConfig) -> set[str]:
    return {q.name for q in org_topology(config).queues}


def test_exchanges_are_durable_with_their_types() -> None:
    exchanges = {(x.name, x.type, x.durable) for x in org_topology(OrgConfig(N)).exchanges}
    assert exchanges == {
        ("org.7.confirm.supporter", ExchangeType.TOPIC, True),
        ("org.7.confirm.action", ExchangeType.TOPIC, True),
        ("org.7.deliver", ExchangeType.TOPIC, True),
        ("org.7.event", ExchangeType.TOPIC, True),
        ("org.7.fail", ExchangeType.FANOUT, True),
        ("org.7.retry", ExchangeType.DIRECT, True),
        ("org.7.delay", ExchangeType.FANOUT, True),
    }


def test_an_org_without_configuration_has_only_the_retry_circuit_and_system_queue() -> None:
    topology = org_topology(OrgConfig(N))
    assert {(q.name, tuple(q.arguments.items())) for q in topology.queues} == {
        ("org.7.fail", (("x-dead-letter-exchange", "org.7.retry"),)),
        ("org.7.delay", (("x-dead-letter-exchange", "org.7.retry"),)),
        ("system.deliver", ()),
    }
    assert set(topology.enabled_bindings) == {
        Binding("org.7.fail", "org.7.fail", ""),
        Binding("org.7.delay", "org.7.delay", ""),
        Binding("org.7.event", "system.deliver", "system.*"),
    }
    # every stage binding is listed as one to remove
    assert len([b for b in topology.bindings if not b.enabled]) == 10


def test_worker_and_custom_queues_dead_letter_to_the_fail_exchange_by_their_name() -> None:
    topology = org_topology(
        OrgConfig(N, email_backend=True, push_backend="webhook", custom_action_deliver=True)
    )
    for name in ("wrk.7.email.supporter", "wrk.7.webhook", "cus.7.deliver"):
        queue = topology.queue(name)
        assert queue is not None and queue.durable
        assert queue.arguments == {
            "x-dead-letter-exchange": "org.7.fail",
            "x-dead-letter-routing-key": name,
        }
        assert Binding("org.7.retry", name, name) in topology.enabled_bindings


def test_email_backend_binds_the_email_queue_to_deliver() -> None:
    assert stage_bindings(OrgConfig(N, email_backend=True)) == {
        ("org.7.deliver", "wrk.7.email.supporter", "#")
    }


def test_supporter_confirm_needs_an_email_backend() -> None:
    assert stage_bindings(OrgConfig(N, supporter_confirm=True)) == set()
    assert stage_bindings(OrgConfig(N, email_backend=True, supporter_confirm=True)) == {
        ("org.7.deliver", "wrk.7.email.supporter", "#"),
        ("org.7.confirm.supporter", "wrk.7.email.supporter", "#"),
    }


def test_push_and_event_backends_pick_the_worker_by_kind() -> None:
    assert stage_bindings(OrgConfig(N, push_backend="sqs")) == {("org.7.deliver", "wrk.7.sqs", "#")}
    assert stage_bindings(OrgConfig(N, event_backend="sqs")) == {("org.7.event", "wrk.7.sqs", "#")}
    assert stage_bindings(OrgConfig(N, push_backend="webhook")) == {
        ("org.7.deliver", "wrk.7.webhook", "#")
    }
    assert stage_bindings(OrgConfig(N, event_backend="webhook")) == {
        ("org.7.event", "wrk.7.webhook", "#")
    }
    assert stage_bindings(OrgConfig(N, push_backend="ses")) == set()


def test_custom_flags_bind_the_custom_queues() -> None:
    assert stage_bindings(OrgConfig(N, custom_supporter_confirm=True)) == {
        ("org.7.confirm.supporter", "cus.7.confirm.supporter", "#")
    }
    assert stage_bindings(OrgConfig(N, custom_action_confirm=True)) == {
        ("org.7.confirm.action", "cus.7.confirm.action", "#")
    }
    assert stage_bindings(OrgConfig(N, custom_action_deliver=True)) == {
        ("org.7.deliver", "cus.7.deliver", "#")
    }
    assert stage_bindings(OrgConfig(N, custom_event_deliver=True)) == {
        ("org.7.event", "cus.7.deliver", "#")
    }


def test_a_flag_turned_off_unbinds_the_stage_but_leaves_the_retry_binding_alone() -> None:
    topology = org_topology(OrgConfig(N))
    assert Binding("org.7.deliver", "cus.7.deliver", "#", enabled=False) in topology.bindings
    assert "cus.7.deliver" not in declared(OrgConfig(N))
    assert not [b for b in topology.bindings if b.exchange == "org.7.retry"]


def test_a_queue_is_declared_once_for_two_stages() -> None:
    config = OrgConfig(N, custom_action_deliver=True, custom_event_deliver=True)
    names = [q.name for q in org_topology(config).queues]
    assert names.count("cus.7.deliver") == 1
    assert [b for b in org_topology(config).bindings if b.exchange == "org.7.retry"] == [
        Binding("org.7.retry", "cus.7.deliver", "cus.7.deliver")
    ]


async def test_load_reads_backends_flags_and_campaign_confirms(session: AsyncSession) -> None:
    org = await make_org(session, custom_action_deliver=True)
    other = await make_org(session, supporter_confirm=True)
    assert await load_org_config(session, org.id) == OrgConfig(org.id, custom_action_deliver=True)
    assert (await load_org_config(session, other.id)).supporter_confirm

    email = Service(name="smtp", org_id=org.id)
    push = Service(name="sqs", org_id=org.id)
    events = Service(name="webhook", org_id=org.id)
    session.add_all([email, push, events])
    await session.flush()
    org.email_backend_id, org.push_backend_id, org.event_backend_id = email.id, push.id, events.id
    campaign = await make_campaign(session, org)
    await session.flush()
    config = await load_org_config(session, org.id)
    assert (config.email_backend, config.push_backend, config.event_backend) == (
        True,
        "sqs",
        "webhook",
    )
    assert not config.supporter_confirm

    campaign.supporter_confirm = True
    await session.flush()
    assert (await load_org_config(session, org.id)).supporter_confirm
    assert stage_bindings(config) >= {(f"org.{org.id}.deliver", f"cus.{org.id}.deliver", "#")}
