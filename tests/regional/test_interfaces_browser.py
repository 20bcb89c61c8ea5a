"""/interfaces/ in headless Chromium at 1366×768 (#13): a short page of collapsed sections under a table of
contents, where following a link opens the interface's section. Screenshots: artifacts/interfaces-*.png."""

from __future__ import annotations

import pytest

from tests.console import english_page, shot  # noqa: F401 - english_page is a fixture

BODY = "#center-synchronizedWorkInfo > .body"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class InterfaceCatalogueInBrowserTests:
    def test_the_table_of_contents_opens_the_section_it_links_to(self, english_page, public_url):  # noqa: F811
        english_page.goto(f"{public_url}/interfaces/")
        height = english_page.evaluate("() => document.documentElement.scrollHeight")
        assert height < 5000, f"页面高 {height}px"  # was 15,000 px with every table open
        shot(english_page, "interfaces-toc")
        assert not english_page.locator(BODY).is_visible()
        english_page.click("nav.toc a[href='#center-synchronizedWorkInfo']")
        body = english_page.locator(BODY)
        assert body.is_visible() and "WorkId" in body.inner_text() and "返回目录" in body.inner_text()
        assert english_page.locator("section.iface > .body:visible").count() == 1  # only the one linked to
        width = english_page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 1366, f"页面宽 {width}px"
        shot(english_page, "interfaces-opened")
        english_page.click("#center-synchronizedWorkInfo a.back")
        assert english_page.evaluate("() => window.scrollY") < 200
