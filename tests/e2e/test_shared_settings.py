"""A link with Train settings in a real browser: the widgets take them, the URL keeps them beside the
learner's token, a page switch there and back keeps the learner's values and puts them back in the
URL, and the shared link (without the token) opens the same settings for another learner.

The address bar's path after a sidebar switch is not checked: in chromium, after any widget change
on Train (with or without settings in the URL), a st.page_link switch drew Draw but left /train in
the address bar; that happens without this feature too."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from .conftest import goto, nav_link, set_slider, wait_for_text, wait_idle, wait_until


def query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(page.url).query).items()}


def lr_text(page) -> str:
    return page.get_by_role("slider", name="Learning rate (log scale)").get_attribute("aria-valuetext")


def test_settings_link_survives_a_page_switch_and_shares_without_the_token(new_page):
    tab = new_page()
    page = tab.page
    goto(page, "/train?lr=0.01&epochs=3&augment=on")
    assert lr_text(page) == "0.01"
    assert page.get_by_label("Epochs", exact=True).input_value() == "3"
    assert "3 settings set from the link" in page.locator('[data-testid="stMain"]').inner_text()
    params = wait_until(lambda: query(page) if "learner" in query(page) else None, message="the learner token")
    token = params["learner"]
    assert {k: v for k, v in params.items() if k != "learner"} == {"lr": "0.01", "epochs": "3", "augment": "on"}

    set_slider(page, "Batch size", "128")
    wait_until(lambda: query(page).get("batch_size") == "128", message="batch_size=128 in the URL")
    wait_idle(page)

    nav_link(page, "Draw").click()
    wait_for_text(page, "Draw a digit", selector="h1")
    wait_idle(page)
    assert query(page).get("learner") == token
    nav_link(page, "Train").click()
    wait_for_text(page, "Train the network", selector="h1")
    wait_until(lambda: query(page) == {"learner": token, "lr": "0.01", "epochs": "3", "augment": "on",
                                       "batch_size": "128"}, message=lambda: f"the settings back in the URL ({page.url})")
    wait_idle(page)
    assert lr_text(page) == "0.01"
    assert page.get_by_role("slider", name="Batch size").get_attribute("aria-valuetext") == "128"

    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Copy link to these settings").click()
    link = wait_until(lambda: next((t for t in main.locator('[data-testid="stCode"]').all_inner_texts()
                                    if "lr=" in t), None), message="the share link")
    link = link.strip()
    assert "learner" not in link and token not in link
    assert re.search(r"/train\?", link)
    assert parse_qs(urlsplit(link).query) == {"lr": ["0.01"], "epochs": ["3"], "augment": ["on"],
                                              "batch_size": ["128"]}

    other = new_page()
    goto(other.page, link)
    assert lr_text(other.page) == "0.01"
    assert other.page.get_by_role("slider", name="Batch size").get_attribute("aria-valuetext") == "128"
    other_token = wait_until(lambda: query(other.page).get("learner"), message="the other learner's token")
    assert other_token != token
    assert tab.problems() == [] and other.problems() == []
