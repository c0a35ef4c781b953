"""The Hub is asked once per process whether it can be reached; a "no" is asked again later."""

import pytest
from huggingface_hub import constants

from speech import hub


@pytest.fixture
def probes(monkeypatch) -> list[str]:
    """The questions asked of the Hub (answered by `answers`, a list the test fills)."""
    asked: list[str] = []
    monkeypatch.setattr(hub, "_answers", {})
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return asked


def answering(monkeypatch, asked: list[str], *answers: bool) -> None:
    replies = iter(answers)

    def probe(endpoint: str) -> bool:
        asked.append(endpoint)
        return next(replies)

    monkeypatch.setattr(hub, "_probe", probe)


def test_an_answer_is_remembered(monkeypatch, probes):
    answering(monkeypatch, probes, True)
    assert [hub.hub_reachable() for _ in range(3)] == [True] * 3
    assert probes == ["http://127.0.0.1:9"]


def test_no_is_asked_again_once_it_is_old(monkeypatch, probes):
    answering(monkeypatch, probes, False, True)
    clock = [1000.0]
    monkeypatch.setattr(hub.time, "monotonic", lambda: clock[0])
    assert hub.hub_reachable() is False
    clock[0] += hub.UNREACHABLE_REMEMBERED_SECONDS / 2
    assert hub.hub_reachable() is False
    assert len(probes) == 1
    clock[0] += hub.UNREACHABLE_REMEMBERED_SECONDS
    assert hub.hub_reachable() is True
    assert len(probes) == 2


def test_offline_mode_asks_nothing(monkeypatch, probes):
    answering(monkeypatch, probes)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: True)
    assert hub.hub_reachable() is False
    assert probes == []


def test_a_closed_port_is_unreachable(monkeypatch, probes):
    # the real probe, against a port nothing listens on
    assert hub.hub_reachable() is False
