"""The staff roles (regional/roles.py, issue 13): every admin page each role can reach, and what the
jobs must and must not do.

The pages are found, not listed by hand: the admin index, each app's index, every registered model's
changelist and add page, and every other admin URL without a parameter (dashboards, imports,
statistics). What a role may see is computed from its permissions: a model page from the
ModelAdmin's own permission checks, a custom view from CUSTOM_VIEWS (a new admin view without an
entry there fails `test_every_custom_admin_view_says_which_permission_opens_it`).
"""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, reverse

from regional.locale import ADMIN_JS_TRANSLATIONS
from regional.roles import (
    COMMISSION,
    FINANCE,
    HOTLINE,
    INTERFACE,
    REFERRAL_DESK,
    REGIONAL_ADMIN,
    ROLES,
    ensure_roles,
    missing_permissions,
)
from tests.console import PASSWORD, assert_no_english, english_page, english_words, login, shot, staff  # noqa: F401

# Admin views beyond a model's changelist/add page, by URL name: the permissions any one of which
# opens them (None: every staff member).
CUSTOM_VIEWS: dict[str, tuple[str, ...] | None] = {
    "index": None,
    "password_change": None,
    "password_change_done": None,
    "jsi18n": None,
    "regional_messagelog_health": ("regional.view_messagelog", "regional.change_messagelog"),
    "referral_referral_statistics": ("referral.view_referral", "referral.change_referral"),
    "referral_overduereferral_statistics": ("referral.view_overduereferral", "referral.change_overduereferral"),
    "reconciliation_statement_upload": ("reconciliation.add_statement",),
    "reconciliation_statement_fetch": ("reconciliation.add_statement",),
    "reconciliation_run_reconcile": ("reconciliation.run_reconciliation",),
    "reconciliation_run_monthly": ("reconciliation.view_reconciliationrun",),
    "reconciliation_discrepancy_resolve": ("reconciliation.resolve_discrepancy",),
    "supervision_report": ("supervision.export_dashboard",),
    "supervision_report_xlsx": ("supervision.export_dashboard",),
    "supervision_report_csv": ("supervision.export_dashboard",),
    "supervision_visits_import": ("supervision.add_outpatientvisits",),
}
# Parameterless admin URLs that are not pages to open: leaving, logging in, the JSON search of
# autocomplete widgets (which needs its parameters).
NOT_PAGES = {"login", "logout", "autocomplete"}


def _walk(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name and not pattern.pattern.regex.groups:
            yield pattern.name


def custom_view_names() -> set[str]:
    model_pages = {
        f"{m._meta.app_label}_{m._meta.model_name}_{page}"
        for m in admin.site._registry
        for page in ("changelist", "add")
    }
    return set(_walk(admin.site.get_urls())) - model_pages - NOT_PAGES


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def expected_pages(user) -> dict[str, bool]:
    """{admin path: may this user open it}, from the user's permissions."""
    request = _request(user)
    pages: dict[str, bool] = {}
    apps: dict[str, bool] = {}
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        may_view = model_admin.has_module_permission(request) and model_admin.has_view_or_change_permission(request)
        may_add = model_admin.has_module_permission(request) and model_admin.has_add_permission(request)
        pages[reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")] = may_view
        pages[reverse(f"admin:{opts.app_label}_{opts.model_name}_add")] = may_add
        apps[opts.app_label] = apps.get(opts.app_label, False) or may_view or may_add
    for app_label, allowed in apps.items():
        pages[reverse("admin:app_list", args=[app_label])] = allowed
    for name in custom_view_names():
        needed = CUSTOM_VIEWS.get(name)
        pages[reverse(f"admin:{name}")] = needed is None or any(user.has_perm(p) for p in needed)
    return pages


def opened(response) -> bool:
    """The page was served (or sent on to a page of its own), not refused or sent to the login."""
    if response.status_code == 302:
        return "/admin/login/" not in response["Location"]
    return response.status_code == 200


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
class RolePagesTests:
    @pytest.mark.parametrize("role", list(ROLES))
    def test_each_role_opens_exactly_the_admin_pages_its_permissions_allow(self, role):
        user = staff(role)
        client = signed_in(user)
        pages = expected_pages(user)
        assert 5 < sum(pages.values()) < len(pages) - 20  # each job opens some pages and is refused many
        wrong = []
        for path, allowed in sorted(pages.items()):
            response = client.get(path)
            assert response.status_code < 500, path
            if allowed and not opened(response):
                wrong.append(f"{path}: {response.status_code}, should open")
            if not allowed and response.status_code not in (403, 404):  # 404: an app index with nothing to show
                wrong.append(f"{path}: {response.status_code}, should be refused")
        assert not wrong, f"岗位 {ROLES[role].group}：\n" + "\n".join(wrong)

    def test_every_page_sends_a_visitor_who_is_not_signed_in_to_the_login(self, admin_user):
        client = Client()
        for path in expected_pages(admin_user):
            response = client.get(path)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path

    def test_every_custom_admin_view_says_which_permission_opens_it(self):
        undeclared = custom_view_names() - set(CUSTOM_VIEWS)
        assert not undeclared, f"add these admin views to CUSTOM_VIEWS with their permission: {sorted(undeclared)}"

    def test_the_page_list_covers_every_model_and_the_custom_views(self, admin_user):
        pages = expected_pages(admin_user)
        assert len(admin.site._registry) >= 40 and len(pages) >= 2 * len(admin.site._registry) + len(CUSTOM_VIEWS)
        assert "/admin/regional/messagelog/health/" in pages and "/admin/booking/" in pages


@pytest.mark.django_db
class RoleJobTests:
    def test_finance_sees_money_but_cannot_open_referrals(self):
        client = signed_in(staff(FINANCE))
        for path in ("/admin/reconciliation/reconciliationrun/", "/admin/reconciliation/discrepancy/",
                     "/admin/reconciliation/reconciliationrun/monthly/", "/admin/booking/order/",
                     "/admin/booking/ledgerentry/"):  # fmt: skip
            assert client.get(path).status_code == 200, path
        for path in ("/admin/referral/referral/", "/admin/referral/overduereferral/",
                     "/admin/referral/referral/statistics/", "/admin/regional/messagelog/"):  # fmt: skip
            assert client.get(path).status_code == 403, path
        assert client.get("/admin/referral/").status_code == 404
        refused = client.get("/admin/referral/referral/").content.decode()
        assert "无权访问" in refused and "Forbidden" not in refused
        assert not any(label.startswith("referral.") for label in ROLES[FINANCE].permissions)

    def test_the_hotline_sees_orders_but_cannot_reveal_or_change_rules(self):
        user = staff(HOTLINE)
        client = signed_in(user)
        assert client.get("/admin/booking/order/").status_code == 200
        assert not user.has_perm("regional.reveal_personal_data")
        assert client.post("/admin/booking/order/1/reveal/id_card/", {"reason": "核对"}).status_code == 403
        assert client.get("/admin/booking/bookingrules/add/").status_code == 403
        assert client.get("/admin/regional/personaldatareveal/").status_code == 403

    def test_the_hotline_may_cancel_orders(self):
        assert staff(HOTLINE).has_perm("booking.cancel_order")

    def test_only_the_regional_admin_may_reveal_personal_data(self):
        for key, role in ROLES.items():
            assert ("regional.reveal_personal_data" in role.permissions) is (key == REGIONAL_ADMIN), key
        holders = Group.objects.filter(permissions__codename="reveal_personal_data").values_list("name", flat=True)
        assert list(holders) == [ROLES[REGIONAL_ADMIN].group]

    def test_the_interface_team_can_add_a_hospital(self):
        client = signed_in(staff(INTERFACE))
        assert client.get("/admin/regional/hospital/add/").status_code == 200

    def test_the_interface_team_holds_the_onboarding_permissions(self):
        user = staff(INTERFACE)
        assert user.has_perms(["regional.add_hospital", "regional.change_hospital", "regional.add_hospitalcredential"])
        assert signed_in(user).get("/admin/regional/messagelog/health/").status_code == 200

    def test_the_referral_desk_works_referrals_and_sees_no_money(self):
        client = signed_in(staff(REFERRAL_DESK))
        assert client.get("/admin/referral/referral/").status_code == 200
        for path in ("/admin/reconciliation/reconciliationrun/", "/admin/booking/ledgerentry/"):
            assert client.get(path).status_code == 403, path

    def test_the_commission_sees_the_dashboard_and_no_single_order(self):
        client = signed_in(staff(COMMISSION))
        assert client.get("/admin/supervision/dashboard/").status_code == 200
        assert client.get("/admin/booking/order/").status_code == 403


@pytest.mark.django_db
class RoleDataTests:
    def test_every_codename_in_roles_exists(self):
        assert missing_permissions() == {}

    def test_every_codename_but_those_awaited_from_other_branches_exists(self):
        assert missing_permissions() in ({}, {HOTLINE: ["booking.cancel_order"]})

    def test_each_group_holds_exactly_its_roles_permissions_even_after_a_hand_edit(self):
        ensure_roles(warn=False)
        group = Group.objects.get(name=ROLES[FINANCE].group)
        group.permissions.add(Permission.objects.get(codename="reveal_personal_data"))
        ensure_roles(warn=False)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert held == set(ROLES[FINANCE].permissions)

    def test_default_permissions_read_in_chinese(self):
        assert not Permission.objects.filter(name__startswith="Can ").exists()
        names = dict(Permission.objects.values_list("codename", "name"))
        assert (names["add_order"], names["change_bookingrules"], names["delete_group"], names["view_user"]) == (
            "可新增预约订单",
            "可修改预约规则",
            "可删除组",
            "可查看用户",
        )
        assert names["change_periodictask"] == "可修改周期性任务"  # a third-party model, in the site's language


@pytest.mark.django_db(transaction=True)
class RolesAfterFlushTests:
    def test_a_flushed_database_gets_the_groups_and_chinese_names_back(self):
        call_command("flush", interactive=False, verbosity=0)
        assert set(Group.objects.values_list("name", flat=True)) >= {role.group for role in ROLES.values()}
        assert not Permission.objects.filter(name__startswith="Can ").exists()
        assert (
            Group.objects.get(name=ROLES[REGIONAL_ADMIN].group)
            .permissions.filter(codename="reveal_personal_data")
            .exists()
        )


@pytest.mark.django_db
class PermissionPickerTests:
    def test_the_admin_script_catalogue_is_chinese_and_complete_for_an_english_browser(self, admin_user):
        client = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
        client.force_login(admin_user)
        script = client.get(reverse("admin:jsi18n")).content.decode()
        for msgid, msgstr in ADMIN_JS_TRANSLATIONS.items():  # the catalogue is JSON, non-ASCII escaped
            assert f"{json.dumps(msgid)}: {json.dumps(msgstr)}" in script, msgid
        assert json.dumps("可用 %s") in script  # and Django's own translations are still there


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
class GroupPageBrowserTests:
    def test_a_roles_group_page_reads_chinese_in_an_english_browser(
        self,
        english_page,  # noqa: F811
        public_url,
        django_user_model,
    ):
        page = english_page
        superuser = django_user_model.objects.create_superuser("平台管理员", password=PASSWORD)
        login(page, public_url, superuser)
        group = Group.objects.get(name=ROLES[FINANCE].group)
        page.goto(f"{public_url}{reverse('admin:auth_group_change', args=[group.pk])}")
        page.wait_for_selector("#id_permissions_filter")  # SelectFilter2 has built the picker
        picker = page.inner_text(".selector")
        assert "可用 权限" in picker and "选中权限，再点击“选择”箭头按钮。" in page.content()
        assert "可查看预约订单" in picker and "Can " not in picker
        keys = {
            "Control",
            "Command",
            "Mac",
        }  # Django's Chinese help names the keys: 按住 Control 键或 Mac 上的 Command 键
        assert not english_words(page.inner_text("#content"), keys)
        assert_no_english(page, keys)
        shot(page, "admin-group-permissions")
