"""Priority lanes: one request topic per lane, every lane consumed by the same group.

``topics.lanes`` lists the lanes highest first as ``NAME=MIN_SHARE`` pairs, e.g.
``interactive=0.1,default=0.3,bulk=0.1``. The lane named "default" reads ``topics.requests``
(so producers that know nothing of lanes land there); every other lane reads
``<topics.requests>.<name>``. The worker drains higher lanes first, but a lane with waiting
work gets at least its ``MIN_SHARE`` of the GPU time (worker/lane_scheduler.py), so nothing
starves. Without ``topics.lanes`` there is one lane, "default", on ``topics.requests``: the
fleet behaves exactly as it did before lanes existed.
"""

from __future__ import annotations

import math
import re
from typing import Any

from streamgen.errors import ConfigError
from streamgen.setting_pairs import named_pairs
from streamgen.settings import Lane, TopicSettings

__all__ = [
    "DEFAULT_LANE",
    "lane_topic",
    "parse_lanes",
    "request_lanes",
    "topic_lanes",
    "topic_ranks",
]

DEFAULT_LANE = "default"
SETTING = "topics.lanes"
# A lane's name becomes part of a topic name: Kafka allows [a-zA-Z0-9._-], and a dot inside a
# lane name would make "<requests>.<name>" ambiguous.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# Shares are stated to a few digits; a sum of 0.1 + 0.2 + 0.7 must not be refused as > 1.
_SUM_TOLERANCE = 1e-9


def request_lanes(topics: TopicSettings) -> tuple[Lane, ...]:
    """The lanes, highest first; without ``topics.lanes`` the one lane "default"."""
    return topics.lanes or (Lane(DEFAULT_LANE, 1.0),)


def lane_topic(topics: TopicSettings, name: str) -> str:
    """The topic of lane ``name``; ConfigError naming the known lanes if there is none."""
    known = [lane.name for lane in request_lanes(topics)]
    if name not in known:
        lanes = ", ".join(known) if topics.lanes else f"{DEFAULT_LANE} alone (it is empty)"
        raise ConfigError(SETTING, f"has no lane {name!r} (asked by --lane); its lanes: {lanes}")
    return topics.requests if name == DEFAULT_LANE else f"{topics.requests}.{name}"


def topic_ranks(topics: TopicSettings) -> dict[str, int]:
    """Each lane's topic -> its rank (0: the highest lane)."""
    lanes = request_lanes(topics)
    return {lane_topic(topics, lane.name): rank for rank, lane in enumerate(lanes)}


def topic_lanes(topics: TopicSettings) -> dict[str, str]:
    """Each lane's topic -> the lane's name, highest lane first."""
    return {lane_topic(topics, lane.name): lane.name for lane in request_lanes(topics)}


def parse_lanes(raw: Any) -> tuple[Lane, ...]:
    """``topics.lanes`` from text (``a=0.1,b=0.2``), a TOML list of such strings or a TOML
    table (``{interactive = 0.1, default = 0.3}``), checked whole: ConfigError names the
    setting and what is wrong."""
    pairs = named_pairs(SETTING, raw, "NAME=MIN_SHARE")
    if not pairs:
        return ()
    lanes = tuple(Lane(_name(name), _share(name, share)) for name, share in pairs)
    names = [lane.name for lane in lanes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(SETTING, f"lane {twice[0]!r} is named twice")
    if DEFAULT_LANE not in names:
        raise ConfigError(
            SETTING,
            f"the lanes {names} must include {DEFAULT_LANE!r} (the lane of topics.requests, "
            "where producers without a lane publish) to give it a rank",
        )
    total = sum(lane.min_share for lane in lanes)
    if total > 1 + _SUM_TOLERANCE:
        raise ConfigError(
            SETTING, f"the minimum shares add up to {total:g}; they must add up to at most 1"
        )
    return lanes


def _name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            SETTING, f"lane name {name!r}: expected lower-case letters, digits, '_' or '-'"
        )
    return name


def _share(name: str, raw: Any) -> float:
    try:
        share = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(SETTING, f"lane {name!r}: min share {raw!r} is not a number") from None
    if not (math.isfinite(share) and 0 < share <= 1):
        raise ConfigError(
            SETTING, f"lane {name!r}: min share must be > 0 and <= 1 (a fraction), got {raw!r}"
        )
    return share
