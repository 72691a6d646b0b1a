"""Size limits of the contract: every model refuses an over-long field, naming it; dead letters fit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentlog import dead_letters
from agentlog import events as ev
from agentlog.dead_letters import DeadLetter
from agentlog.events.limits_scan import over_limit
from agentlog.limits import DEAD_LETTER_KEEP_BYTES, MAX_CHARS, MAX_ITEMS, quote


def meta(**fields: str) -> ev.Meta:
    return ev.Meta(**{"tenant_id": "acme", "root_id": "r", "producer": "t", **fields})


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ev.RootAgentRegistered(meta=meta(), agent_id="a" * 257, config="c", token_budget=1, spawn_budget=0),
         "agent_id"),
        (lambda: meta(tenant_id="t" * 257), "tenant_id"),
        (lambda: ev.TaskSpec(title="t" * (MAX_CHARS["short"] + 1)), "title"),
        (lambda: ev.TaskSpec(title="t", description="d" * (MAX_CHARS["text"] + 1)), "description"),
        (lambda: ev.TaskSpec(title="t", acceptance_criteria=["c"] * (MAX_ITEMS + 1)), "acceptance_criteria"),
        (lambda: ev.TerminationRequested(meta=meta(), agent_id="a", requested_by="me", reason="r" * 20_000),
         "reason"),
    ],
)  # fmt: skip
def test_over_long_fields_are_refused_by_name(build: object, field: str) -> None:
    """Ids, short texts, free text and lists each have a limit; the error names the field."""
    with pytest.raises(ValidationError) as caught:
        build()  # type: ignore[operator]
    assert field in {str(part) for error in caught.value.errors() for part in error["loc"]}


def test_text_up_to_its_limit_is_accepted() -> None:
    """The limits are limits, not off by one."""
    task = ev.TaskSpec(title="t" * MAX_CHARS["short"], description="d" * MAX_CHARS["text"])
    assert len(task.description) == MAX_CHARS["text"]


def test_the_scan_finds_long_ids_without_a_model() -> None:
    """over_limit checks a decoded value's top-level and meta strings."""
    value = {"meta": {"tenant_id": "acme", "root_id": "r" * 300, "producer": "p"}, "agent_id": "a", "config": "c"}
    assert "meta.root_id is 300 characters" in (over_limit(ev.RootAgentRegistered.avro_name, value) or "")
    value["meta"]["root_id"] = "r"  # type: ignore[index]
    assert over_limit(ev.RootAgentRegistered.avro_name, value) is None


def test_quotes_are_cut() -> None:
    """Generated messages quote at most QUOTE_CHARS of an input's text."""
    assert quote("short") == "short"
    assert len(quote("x" * 5000)) == 1000 and quote("x" * 5000).endswith("…")


def test_a_dead_letter_too_large_is_cut_and_says_so() -> None:
    """Key and value keep their first bytes; a header gives the original sizes; small letters stay whole."""
    small = DeadLetter("s", ValueError("bad"), "t", 0, 7, b"k", b"v")
    assert small.record() == (b"k", b"v", small.headers())
    big = DeadLetter("s", ValueError("bad"), "t", 0, 7, b"k" * 500_000, b"v" * 497_000)
    key, value, headers = big.record([("traceparent", b"00-abc")])
    assert key == b"k" * DEAD_LETTER_KEEP_BYTES and value == b"v" * DEAD_LETTER_KEEP_BYTES
    named = dict(headers)
    assert named["traceparent"] == b"00-abc" and named[dead_letters.SOURCE_OFFSET] == b"7"
    assert b"key 500000 bytes, value 497000 bytes" in named[dead_letters.TRUNCATED]  # type: ignore[operator]
