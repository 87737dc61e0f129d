"""The busy-but-not-converting flag of the per-rep summary.

Rule: within a team of at least `MIN_TEAM` reps, a rep is flagged when
their actions (calls, SMS, emails and other touches) are at least
`ACTIONS_FACTOR` times the team's median, while their won customers are at
most `TARGETS_FACTOR` times the team's median won customers. A team whose
median of won customers is zero flags nobody, because nobody is below it.
Reps with no team form one group of their own.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reports.reps import RepSummary

MIN_TEAM = 3
ACTIONS_FACTOR = 1.5
TARGETS_FACTOR = 0.5


def flag_busy_not_converting(summaries: list[RepSummary]) -> None:
    """Set `busy_not_converting` and `busy_figures` on each summary in place."""
    teams: dict[str | None, list[RepSummary]] = defaultdict(list)
    for summary in summaries:
        teams[summary.team].append(summary)
    for members in teams.values():
        if len(members) < MIN_TEAM:
            continue
        median_actions = statistics.median(member.actions for member in members)
        median_won = statistics.median(member.won_customers for member in members)
        if median_actions <= 0 or median_won <= 0:
            continue
        for member in members:
            busy = member.actions >= ACTIONS_FACTOR * median_actions
            behind = member.won_customers <= TARGETS_FACTOR * median_won
            if busy and behind:
                member.busy_not_converting = True
                member.busy_figures = {
                    "actions": member.actions,
                    "team_median_actions": float(median_actions),
                    "won_customers": member.won_customers,
                    "team_median_won_customers": float(median_won),
                }
