"""Issue 14 item 17: the Content-Security-Policy, in headless Chromium against the live server.

The platform's own pages run under it without a single violation (the referral form's scripts, the
admin, the API docs), and a script injected into a page does not run."""

from __future__ import annotations

import pytest
import requests

from tests.base import SENDER_NO, start_xml
from tests.referral.test_browser import call, page  # noqa: F401  (the Chromium fixture)


def watch(page):  # noqa: F811
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return violations


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_state")
@pytest.mark.django_db(transaction=True)
class ContentSecurityPolicyTests:
    def test_every_response_carries_the_policy_with_a_fresh_nonce(self, public_url):
        first = requests.get(f"{public_url}/interfaces/", timeout=10).headers["Content-Security-Policy"]
        second = requests.get(f"{public_url}/interfaces/", timeout=10).headers["Content-Security-Policy"]
        assert "script-src 'self' 'nonce-" in first and "frame-ancestors 'none'" in first and first != second

    def test_the_referral_form_runs_its_scripts_and_an_injected_one_does_not(self, page, public_url, sender, receiver):  # noqa: F811
        violations = watch(page)
        started = call(public_url, start_xml(), SENDER_NO)
        page.goto(f"{public_url}/referral/referral/his.html?{started.parm}")
        page.fill("#hospital-q", "csde")  # the nonce'd script filters the list
        assert page.locator("#hospital option:not([hidden])").count() == 1
        assert violations == [], violations
        try:
            page.add_script_tag(content="window.injected = 1")
        except Exception:  # noqa: BLE001 - Playwright reports the refused script as an error
            pass
        assert page.evaluate("window.injected") is None
        assert any("inline script" in v for v in violations), violations

    def test_the_admin_and_the_api_docs_run_without_violations(self, page, public_url, admin_user):  # noqa: F811
        violations = watch(page)
        page.goto(f"{public_url}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        page.goto(f"{public_url}/admin/regional/messagelog/")
        assert "消息" in page.content() or "报文" in page.content()
        page.goto(f"{public_url}/api/docs/")
        page.wait_for_selector(".swagger-ui .info", timeout=15000)
        assert "渠道接口" in page.content()
        assert violations == [], violations
