"""The Labels page's keys go to the open tab only (AppTest). Streamlit keeps a hidden tab's buttons in the page and
their shortcuts fire too: with a name in both the Decide and the Label-by-hand tabs, one press of 0 in a real
browser labelled a pair in each, under two names. So the buttons of the tab that is not open carry no key."""

from streamlit.testing.v1 import AppTest
from support.dashboard_lab import page_opener

DECIDE = {"decide-0": "0", "decide-1": "1", "decide-2": "2", "decide-skip": "s"}
BY_HAND = {"grade-0": "0", "grade-1": "1", "grade-2": "2", "label-skip": "s"}


def shortcuts(at: AppTest, keys: dict[str, str]) -> dict[str, str]:
    return {key: at.button(key=key).proto.shortcut for key in keys}


def test_only_the_open_tabs_buttons_take_keys(unlabelled_lab, monkeypatch):
    at = page_opener(unlabelled_lab.home, monkeypatch)("dashboard/pages/labels.py")
    at.text_input(key="decide-name").set_value("bob").run()
    at.text_input(key="label-name").set_value("ann").run()
    assert not at.exception, [e.value for e in at.exception]
    assert shortcuts(at, DECIDE) == DECIDE  # Decide is open first
    assert set(shortcuts(at, BY_HAND).values()) == {""}

    at.session_state["labels-tab"] = "Label by hand"  # what a click on the tab sets
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert shortcuts(at, BY_HAND) == BY_HAND
    assert set(shortcuts(at, DECIDE).values()) == {""}
