"""The state machine over every (action status, supporter status) pair."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.processing.transition import (
    ConfirmFlags,
    Stage,
    Transition,
    effective_flags,
    stage_of,
    transition,
)

NO_CONFIRM = ConfirmFlags(supporter_confirm=False, action_confirm=False)
SUPPORTER_CONFIRM = ConfirmFlags(supporter_confirm=True, action_confirm=False)
ACTION_CONFIRM = ConfirmFlags(supporter_confirm=False, action_confirm=True)
BOTH = ConfirmFlags(supporter_confirm=True, action_confirm=True)
ALL_FLAGS = (NO_CONFIRM, SUPPORTER_CONFIRM, ACTION_CONFIRM, BOTH)
SUPPORTERS: tuple[S | None, ...] = (None, *S)

DELIVER = Transition(A.DELIVERED, S.ACCEPTED, Stage.DELIVER)
MODERATE = Transition(A.CONFIRMING, S.ACCEPTED, Stage.ACTION_CONFIRM)
ASK_SUPPORTER = Transition(A.NEW, S.CONFIRMING, Stage.SUPPORTER_CONFIRM)
REJECT = Transition(A.REJECTED, S.REJECTED, None)


def expected(
    action: A, supporter: S | None, with_consent: bool, flags: ConfirmFlags
) -> Transition | None:
    """The table written out pair by pair; anything not listed is a no-op."""
    if (action, supporter) == (A.NEW, S.NEW):
        if not with_consent:
            return None
        if flags.supporter_confirm:
            return ASK_SUPPORTER
        return MODERATE if flags.action_confirm else DELIVER
    if (action, supporter) == (A.NEW, S.ACCEPTED):
        return MODERATE if with_consent and flags.action_confirm else DELIVER
    if (action, supporter) == (A.ACCEPTED, S.ACCEPTED):
        return DELIVER
    if (action, supporter) in ((A.NEW, S.REJECTED), (A.CONFIRMING, S.REJECTED)):
        return REJECT
    if (action, supporter) == (A.ACCEPTED, S.REJECTED):
        return REJECT
    return None


CASES = list(itertools.product(A, SUPPORTERS, (True, False), ALL_FLAGS))


@pytest.mark.parametrize(("action", "supporter", "with_consent", "flags"), CASES)
def test_every_pair_has_a_defined_answer(
    action: A, supporter: S | None, with_consent: bool, flags: ConfirmFlags
) -> None:
    got = transition(action, supporter, with_consent=with_consent, flags=flags)
    assert got == expected(action, supporter, with_consent, flags)


def test_the_table_covers_thirty_pairs_times_consent_and_flags() -> None:
    assert len({(a, s) for a, s, _, _ in CASES}) == 6 * 5
    assert len(CASES) == 6 * 5 * 2 * 4


def test_emitting_moves_are_the_only_ones_with_a_stage() -> None:
    moves = {transition(a, s, with_consent=c, flags=f) for a, s, c, f in CASES} - {None}
    assert moves == {DELIVER, MODERATE, ASK_SUPPORTER, REJECT}


@pytest.mark.parametrize("supporter", SUPPORTERS)
@pytest.mark.parametrize("action", [A.DELIVERED, A.REPEAT])
def test_delivered_and_repeat_never_move(action: A, supporter: S | None) -> None:
    for flags in ALL_FLAGS:
        assert transition(action, supporter, with_consent=True, flags=flags) is None


def test_unlinked_actions_wait() -> None:
    for action in A:
        assert transition(action, None, with_consent=False, flags=NO_CONFIRM) is None


def test_share_on_a_new_supporter_waits_for_the_consent_action() -> None:
    assert transition(A.NEW, S.NEW, with_consent=False, flags=SUPPORTER_CONFIRM) is None
    # once the consent action accepted the supporter, the share is delivered
    assert transition(A.NEW, S.ACCEPTED, with_consent=False, flags=ACTION_CONFIRM) == DELIVER


def test_accepted_action_of_unconfirmed_supporter_waits() -> None:
    assert transition(A.ACCEPTED, S.CONFIRMING, with_consent=True, flags=NO_CONFIRM) is None


@dataclass
class _Org:
    supporter_confirm: bool = False
    custom_supporter_confirm: bool = False
    custom_action_confirm: bool = False


@dataclass
class _Campaign:
    supporter_confirm: bool | None = None
    action_confirm: bool | None = None


@pytest.mark.parametrize(
    ("org", "campaign", "flags"),
    [
        (_Org(), _Campaign(), NO_CONFIRM),
        (_Org(supporter_confirm=True), _Campaign(), SUPPORTER_CONFIRM),
        (_Org(custom_supporter_confirm=True), _Campaign(), SUPPORTER_CONFIRM),
        (_Org(supporter_confirm=True), _Campaign(supporter_confirm=False), NO_CONFIRM),
        (_Org(), _Campaign(supporter_confirm=True), SUPPORTER_CONFIRM),
        (_Org(custom_action_confirm=True), _Campaign(), ACTION_CONFIRM),
        (_Org(custom_action_confirm=True), _Campaign(action_confirm=False), NO_CONFIRM),
        (_Org(), _Campaign(action_confirm=True), ACTION_CONFIRM),
        (_Org(custom_supporter_confirm=True), None, SUPPORTER_CONFIRM),
    ],
)
def test_campaign_settings_override_the_org_when_not_null(
    org: _Org, campaign: _Campaign | None, flags: ConfirmFlags
) -> None:
    assert effective_flags(org, campaign) == flags


@pytest.mark.parametrize(
    ("action", "supporter", "stage"),
    [
        (A.DELIVERED, S.ACCEPTED, Stage.DELIVER),
        (A.REPEAT, S.ACCEPTED, Stage.DELIVER),
        (A.REPEAT, S.CONFIRMING, Stage.DELIVER),
        (A.NEW, S.CONFIRMING, Stage.SUPPORTER_CONFIRM),
        (A.CONFIRMING, S.ACCEPTED, Stage.ACTION_CONFIRM),
        (A.NEW, S.ACCEPTED, None),
        (A.DELIVERED, S.CONFIRMING, None),
        (A.REPEAT, None, None),
    ],
)
def test_stage_of_processed_actions(action: A, supporter: S | None, stage: Stage | None) -> None:
    assert stage_of(action, supporter) == stage
