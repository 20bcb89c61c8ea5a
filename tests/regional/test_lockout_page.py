"""The page a locked-out login gets (issue 13): the admin's login layout in Chinese, saying how long
to wait, with the way back to the login."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.console import PASSWORD, assert_no_english, english_page, shot  # noqa: F401 - a fixture


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class LockoutPageTests:
    def test_a_locked_out_login_reads_chinese_says_how_long_and_leads_back(
        self,
        english_page,  # noqa: F811
        public_url,
        settings,
    ):
        settings.LOGIN_MAX_FAILURES = 2
        User.objects.create_user("值班员", password=PASSWORD, is_staff=True)
        page = english_page
        for password in ("wrong-1", "wrong-2", PASSWORD):
            page.goto(f"{public_url}/admin/login/")
            page.fill("#id_username", "值班员")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_load_state("load")
        text = page.inner_text("body")
        assert "登录失败次数过多" in text and "秒后再试" in page.inner_text(".wait")
        assert_no_english(page)
        shot(page, "admin-login-locked")
        page.click("text=返回登录页")
        page.wait_for_load_state("load")
        assert page.url.startswith(f"{public_url}/admin/login/") and page.locator("#id_username").count() == 1
