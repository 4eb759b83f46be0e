"""topics.lanes: parsed from text, TOML lists and tables, refused with the setting named."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamgen.configuration import load_settings
from streamgen.errors import ConfigError
from streamgen.lanes import lane_topic, request_lanes, topic_ranks
from streamgen.settings import Lane, TopicSettings

THREE = (Lane("interactive", 0.1), Lane("default", 0.3), Lane("bulk", 0.1))


def test_without_lanes_there_is_one_lane_on_the_requests_topic() -> None:
    topics = load_settings(env={}).topics
    assert topics.lanes == ()
    assert request_lanes(topics) == (Lane("default", 1.0),)
    assert topic_ranks(topics) == {"streamgen.requests": 0}


def test_lanes_from_the_environment_keep_their_order_and_name_their_topics() -> None:
    env = {"STREAMGEN_TOPICS_LANES": "interactive=0.1, default=0.3, bulk=0.1"}
    topics = load_settings(env=env).topics
    assert topics.lanes == THREE
    assert topic_ranks(topics) == {
        "streamgen.requests.interactive": 0,
        "streamgen.requests": 1,
        "streamgen.requests.bulk": 2,
    }


@pytest.mark.parametrize(
    "toml",
    [
        'lanes = ["interactive=0.1", "default=0.3", "bulk=0.1"]',
        "lanes = {interactive = 0.1, default = 0.3, bulk = 0.1}",
    ],
)
def test_lanes_from_a_toml_list_or_table(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "streamgen.toml"
    path.write_text(f"[topics]\n{toml}\n")
    assert load_settings(config_file=path, env={}).topics.lanes == THREE


def test_lanes_written_as_text_read_back_the_same() -> None:
    """A child process gets the lanes through STREAMGEN_TOPICS_LANES (settings_env)."""
    text = ",".join(map(str, THREE))
    assert text == "interactive=0.1,default=0.3,bulk=0.1"
    assert load_settings(env={"STREAMGEN_TOPICS_LANES": text}).topics.lanes == THREE


def test_an_unknown_lane_is_refused_naming_the_known_ones() -> None:
    topics = TopicSettings(lanes=THREE)
    assert lane_topic(topics, "bulk") == "streamgen.requests.bulk"
    assert lane_topic(topics, "default") == "streamgen.requests"
    with pytest.raises(
        ConfigError,
        match=r"'topics\.lanes': has no lane 'urgent' \(asked by --lane\); its lanes: interactive, "
        "default, bulk",
    ):
        lane_topic(topics, "urgent")
    with pytest.raises(ConfigError, match=r"its lanes: default alone \(it is empty\)"):
        lane_topic(TopicSettings(), "bulk")


@pytest.mark.parametrize(
    ("lanes", "message"),
    [
        ("interactive=0,default=0.2", "lane 'interactive': min share must be > 0"),
        ("interactive=-0.1,default=0.2", "min share must be > 0"),
        ("default=1.5", "min share must be > 0 and <= 1"),
        ("default=nan", "min share must be > 0"),
        ("default=lots", "min share 'lots' is not a number"),
        ("default=0.6,bulk=0.6", "add up to 1.2; they must add up to at most 1"),
        ("interactive=0.1,bulk=0.1", "must include 'default'"),
        ("default=0.1,default=0.2", "lane 'default' is named twice"),
        ("default", "expected NAME=MIN_SHARE, got 'default'"),
        ("Bulk.night=0.1,default=0.1", "lane name 'Bulk.night'"),
    ],
)
def test_a_bad_lane_setting_is_refused_naming_it(lanes: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"topics\.lanes") as raised:
        load_settings({"topics.lanes": lanes}, env={})
    assert message in str(raised.value)
    assert raised.value.setting == "topics.lanes"


def test_topics_create_and_the_acls_cover_every_lane() -> None:
    from streamgen.local.acls import producer_acls, worker_acls
    from streamgen.ops.topics import plan_topics

    topics = TopicSettings(lanes=THREE, partitions=4)
    lanes = ["streamgen.requests.interactive", "streamgen.requests", "streamgen.requests.bulk"]
    plan = {spec.name: spec.partitions for spec in plan_topics(topics)}
    assert all(plan[topic] == 4 for topic in lanes)
    assert [t for _, t, op in worker_acls(topics, "g") if t in lanes] == lanes
    assert [t for _, t, op in producer_acls(topics) if t in lanes] == lanes
    # A share-mode worker requeues what it will not start to the record's own lane's topic.
    writes = [t for _, t, op in worker_acls(topics, "g", share=True) if op.name == "WRITE"]
    assert [t for t in writes if t in lanes] == lanes
    assert not {t for _, t, op in worker_acls(topics, "g") if op.name == "WRITE"} & set(lanes)


def test_submit_to_an_unknown_lane_names_the_known_lanes_and_publishes_nothing() -> None:
    from click.testing import CliRunner

    from streamgen.cli.submit import submit

    result = CliRunner().invoke(
        submit,
        ["--bootstrap-servers", "127.0.0.1:1", "--lane", "urgent", "--prompt", "a cat"],
        env={"STREAMGEN_TOPICS_LANES": "interactive=0.1,default=0.3,bulk=0.1"},
    )
    assert result.exit_code == 1
    assert "has no lane 'urgent' (asked by --lane); its lanes: interactive, default, bulk" in (
        result.output
    )
