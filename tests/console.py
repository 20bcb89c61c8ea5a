"""Shared pieces of the staff-console tests (#13): a member of each role, a Chromium page that asks
for English (`Accept-Language: en-US`, the stranger's browser) at 1366×768, logging in, the check
that no English reaches the eye, and screenshots under artifacts/.

Use: `from tests.console import english_page, staff, login, assert_no_english, shot`.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User

from regional.roles import ROLES, ensure_roles
from tests.base import drop_dead_connections
from tests.referral.test_browser import ARTIFACTS, LAUNCH_ARGS, VIEWPORT, require_chromium

PASSWORD = "console-test-password-1"  # noqa: S105 - throwaway test accounts

# Words a Chinese page may still show: product and protocol names, units, codes.
ALLOWED_WORDS = {
    "SOAP", "REST", "API", "WSDL", "XML", "JSON", "HTTP", "HTTPS", "URL", "CSV", "Excel", "SMS",
    "HIS", "ID", "IP", "TransactionId", "WorkFlowId", "Django", "Celery", "Redis", "PostgreSQL",
    "WeChat", "Alipay", "Basic", "UsernameToken", "Token", "ms", "p95", "p50", "p99", "h", "d",
    "OK", "CA", "PDF", "SVG", "UTC", "GMT", "CST", "Asia", "Shanghai", "ws", "center", "wsdl",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z][A-Za-z']+")


def staff(role_key: str, username: str | None = None) -> User:
    """A staff account in exactly one role's group (the groups are re-made: a flush empties them)."""
    ensure_roles(warn=False)  # a codename still missing fails tests/test_roles.py, not every test
    role = ROLES[role_key]
    user = User.objects.create_user(username or role_key, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role.group))
    return user


@pytest.fixture
def english_page(monkeypatch, settings):
    """A headless Chromium page whose browser asks for English, as a stranger's would."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.CSRF_COOKIE_SECURE = False  # the live server speaks plain HTTP
    settings.SESSION_COOKIE_SECURE = False
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport=VIEWPORT, locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"}
            )
            drop_dead_connections()
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def login(page, public_url: str, user: User, next_path: str = "/admin/") -> None:
    page.goto(f"{public_url}/admin/login/?next={next_path}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state("load")
    assert "/admin/login/" not in page.url, "登录失败"


def english_words(text: str, allowed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """English words in a page's visible text, beyond the allowed product and protocol names."""
    ok = ALLOWED_WORDS | set(allowed)
    return sorted({w for w in _WORD.findall(text) if w not in ok and w.upper() not in ok})


def assert_no_english(page, allowed: set[str] | frozenset[str] = frozenset()) -> None:
    """No English word is visible on the page (body text, button labels, placeholders, titles)."""
    text = page.inner_text("body")
    text += " " + " ".join(
        page.eval_on_selector_all(
            "input[type=submit], input[type=button], button, [placeholder], [title]",
            "els => els.map(e => [e.value, e.placeholder, e.title].filter(Boolean).join(' '))",
        )
    )
    text += " " + page.title()
    found = english_words(text, allowed)
    assert not found, f"页面 {page.url} 出现英文：{found[:20]}"


def shot(page, name: str) -> str:
    """Save a full-page screenshot as artifacts/<name>.png and return the file name."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path.name
