"""The processing state machine: a pure function of the statuses.

An action moves through the pipeline together with its supporter:

    A(new)/S(new) --supporter confirm on--> A(new)/S(confirming)     emit supporter_confirm
                  --action confirm on-----> A(confirming)/S(accepted) emit action_confirm
                  --otherwise-------------> A(delivered)/S(accepted)  emit deliver
    A(new)/S(confirming)    waits for the supporter's click (lifecycle.confirm_supporter)
    A(new|accepted)/S(accepted) -> A(delivered) emit deliver (action confirm first for the
                                   action that carried the consent, when action confirm is on)
    A(confirming)/S(accepted)   waits for moderation (lifecycle.confirm_action)
    a rejected supporter drags its new or pending actions to rejected

`transition` answers `None` for "nothing to do". Every pair of statuses has an answer here:
the pairs the diagram above leaves out are no-ops unless noted at their rule, so that a
sweep over odd rows (edited by hand, left by a crash, made by an older server) never fails.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import SupporterProcessingStatus as S


class Stage(enum.StrEnum):
    SUPPORTER_CONFIRM = "supporter_confirm"
    ACTION_CONFIRM = "action_confirm"
    DELIVER = "deliver"


@dataclass(frozen=True, slots=True)
class Transition:
    action_status: A
    supporter_status: S | None
    stage: Stage | None


@dataclass(frozen=True, slots=True)
class ConfirmFlags:
    """Whether the supporter, and then the action, are to be confirmed before delivery."""

    supporter_confirm: bool
    action_confirm: bool


class _OrgFlags(Protocol):
    @property
    def supporter_confirm(self) -> bool: ...
    @property
    def custom_supporter_confirm(self) -> bool: ...
    @property
    def custom_action_confirm(self) -> bool: ...


class _CampaignFlags(Protocol):
    @property
    def supporter_confirm(self) -> bool | None: ...
    @property
    def action_confirm(self) -> bool | None: ...


def effective_flags(org: _OrgFlags, campaign: _CampaignFlags | None) -> ConfirmFlags:
    """The page owner org's settings, overridden by the campaign's when those are not null
    (campaign settings are tri-state: null inherits)."""
    supporter = campaign.supporter_confirm if campaign is not None else None
    if supporter is None:
        supporter = bool(org.supporter_confirm or org.custom_supporter_confirm)
    action = campaign.action_confirm if campaign is not None else None
    if action is None:
        action = bool(org.custom_action_confirm)
    return ConfirmFlags(supporter_confirm=bool(supporter), action_confirm=bool(action))


def transition(
    action_status: A,
    supporter_status: S | None,
    *,
    with_consent: bool,
    flags: ConfirmFlags,
) -> Transition | None:
    # An unlinked action (any status) waits until addActionContact links it to a supporter.
    if supporter_status is None:
        return None
    # Delivered or repeat: the action has been emitted for good, whatever happens to its
    # supporter afterwards (a later reject cannot call a delivered message back).
    if action_status in (A.DELIVERED, A.REPEAT):
        return None

    if supporter_status is S.REJECTED:
        if action_status is A.REJECTED:
            return None  # already where rule 5 would put it
        # Rule 5 covers a new action. A confirming or accepted action of a supporter who
        # was rejected meanwhile (reject link, bounce) is rejected too rather than left
        # pending: the supporter said "it wasn't me", so nothing of theirs is delivered.
        return Transition(A.REJECTED, S.REJECTED, None)

    if supporter_status is S.NEW:
        if action_status is not A.NEW:
            # A confirming/accepted/rejected action on a supporter nobody processed yet
            # cannot arise from the API; wait for the supporter's own action to process it.
            return None
        if not with_consent:
            # Rule 6, placed before rule 3 on purpose: only the action that carried the
            # consent starts the supporter's processing. Letting a share attached to a new
            # supporter do it would send the supporter-confirm message for an action the
            # email worker ignores (no consent on it), and the supporter would never get
            # their confirm email. The share is delivered once the supporter is accepted.
            return None
        if flags.supporter_confirm:
            return Transition(A.NEW, S.CONFIRMING, Stage.SUPPORTER_CONFIRM)
        if flags.action_confirm:
            return Transition(A.CONFIRMING, S.ACCEPTED, Stage.ACTION_CONFIRM)
        return Transition(A.DELIVERED, S.ACCEPTED, Stage.DELIVER)

    if supporter_status is S.CONFIRMING:
        # Rule 4 for a new action; any other action of an unconfirmed supporter waits too
        # (e.g. accepted + confirming, which the original fails on).
        return None

    # supporter accepted
    if action_status is A.NEW:
        if with_consent and flags.action_confirm:
            return Transition(A.CONFIRMING, S.ACCEPTED, Stage.ACTION_CONFIRM)
        return Transition(A.DELIVERED, S.ACCEPTED, Stage.DELIVER)
    if action_status is A.ACCEPTED:
        return Transition(A.DELIVERED, S.ACCEPTED, Stage.DELIVER)
    # confirming (waits for moderation) or rejected (stays so)
    return None


def stage_of(action_status: A, supporter_status: S | None) -> Stage | None:
    """The stage a message of an already processed action belongs to (for requeueing)."""
    if supporter_status is None:
        return None
    if action_status is A.REPEAT:
        return Stage.DELIVER
    if action_status is A.DELIVERED and supporter_status is S.ACCEPTED:
        return Stage.DELIVER
    if action_status is A.NEW and supporter_status is S.CONFIRMING:
        return Stage.SUPPORTER_CONFIRM
    if action_status is A.CONFIRMING and supporter_status is S.ACCEPTED:
        return Stage.ACTION_CONFIRM
    return None
