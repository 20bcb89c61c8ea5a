"""The staff roles (岗位) as data: each job's group and the permissions it needs, written once.

`ensure_roles()` makes the groups match this table exactly; it runs after every migrate
(post_migrate, so a test database flushed between transactional tests gets them back) and from the
data migration. An app that adds a permission for a job adds it here, nowhere else, through
`_perms("app", "codename", ...)`: a literal "app.codename" would read as a module path to the
layout test (the ground floor names no app in a string).

A codename that no model declares is skipped with a warning rather than failing `migrate` (a branch
may name a permission whose model lands with another branch); tests/test_roles.py fails on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

REGIONAL_ADMIN = "regional_admin"
HOTLINE = "hotline"
REFERRAL_DESK = "referral_desk"
FINANCE = "finance"
INTERFACE = "interface"
COMMISSION = "commission"

# What Django calls its default permissions, and how staff read them.
DEFAULT_ACTIONS = {"add": "可新增", "change": "可修改", "delete": "可删除", "view": "可查看"}


@dataclass(frozen=True)
class Role:
    key: str
    group: str  # the Group's name, what staff see
    summary: str
    permissions: tuple[str, ...]  # "app_label.codename"


def _perms(app: str, *codenames: str) -> tuple[str, ...]:
    return tuple(f"{app}.{c}" for c in codenames)


def _view(app: str, *models: str) -> tuple[str, ...]:
    return _perms(app, *(f"view_{m}" for m in models))


_MASTER_DATA_VIEW = _view("regional", "hospital", "department", "doctor") + _view("booking", "schedule", "channel")

ROLES: dict[str, Role] = {
    role.key: role
    for role in (
        Role(
            HOTLINE,
            "客服热线",
            "查找患者订单（证件号、手机号、姓名均以脱敏显示），代患者退号退费，补发通知，处理爽约禁约。",
            _MASTER_DATA_VIEW
            + _view("booking", "order", "ordertransition", "patientnotification", "noshowrecord", "noshowban")
            + _view("booking", "waitlistentry", "bookingrules")
            + _perms("booking", "cancel_order", "resolve_order", "retry_patientnotification", "change_noshowban"),
        ),
        Role(
            REFERRAL_DESK,
            "转诊管理员",
            "处理双向转诊单及其提醒、预约，查看超时未处理的转诊。",
            _view("regional", "hospital", "department", "doctor")
            + _view("referral", "referral", "referralbooking", "referraltransition", "referralaccess")
            + _view("referral", "referralnotification", "overduereferral")
            + _perms("referral", "change_referral", "change_overduereferral"),
        ),
        Role(
            FINANCE,
            "财务人员",
            "导入对账单、发起对账、处理差异、导出对账结果；看得到金额与订单（脱敏），看不到转诊的临床信息。",
            _view("regional", "hospital")
            + _view("booking", "order", "ledgerentry", "channel")
            + _view(
                "reconciliation",
                "statementsource",
                "statement",
                "statementline",
                "reconciliationrun",
                "statementimport",
            )
            + _view("reconciliation", "discrepancy", "ledgerentryrecord")
            + _perms("reconciliation", "add_statement", "add_reconciliationrun", "run_reconciliation")
            + _perms("reconciliation", "export_reconciliation", "change_discrepancy", "resolve_discrepancy"),
        ),
        Role(
            INTERFACE,
            "接口运维",
            "接入医院、签发与轮换接入凭证、运行接口自检，查看接口报文、接口健康与待重发的通知。",
            _MASTER_DATA_VIEW
            + _view("regional", "hospitalcredential", "messagelog", "inboundtransaction")
            + _view("regional", "conformancerun", "conformancecheck")
            + _view("booking", "outboxmessage", "lostlock")
            + _view("django_celery_beat", "periodictask", "crontabschedule", "intervalschedule")
            + _perms("regional", "add_hospital", "change_hospital", "add_hospitalcredential")
            + _perms("regional", "change_hospitalcredential", "run_conformance")
            + _perms("booking", "retry_outboxmessage", "change_lostlock"),
        ),
        Role(
            REGIONAL_ADMIN,
            "区域管理员",
            "管理医院、科室、医生、排班与预约规则，查看审计记录；唯一可查看完整个人信息（须填写原因）的岗位。",
            _MASTER_DATA_VIEW
            + _view("booking", "order", "ordertransition", "bookingrules", "noshowban", "waitlistentry")
            + _view("referral", "referral", "overduereferral")
            + _view("regional", "auditentry", "personaldatareveal", "messagelog")
            + _perms("regional", "change_hospital", "change_department", "change_doctor", "reveal_personal_data")
            + _perms("booking", "add_bookingrules", "change_bookingrules", "stop_schedule", "change_noshowban"),
        ),
        Role(
            # The group supervision's migration 0002 created first; described here so that it stays
            # exactly these permissions like every other role.
            COMMISSION,
            "卫健委监管人员",
            "查看监管指标看板与明细、录入门诊量与门诊能力、导出监管月报；不接触单个患者的完整信息。",
            _perms("supervision", "view_dashboard", "export_dashboard", "view_supervisedorder")
            + _perms("supervision", "view_supervisedschedule", "view_supervisedreferral", "view_supervisedmessage")
            + _perms("supervision", "view_outpatientcapacity", "view_outpatientvisits", "view_statsrun"),
        ),
    )
}


def missing_permissions(apps=None, using: str = "default") -> dict[str, list[str]]:
    """{role key: the codenames in ROLES that no permission row matches}; empty when all exist."""
    Permission = _apps(apps).get_model("auth", "Permission")
    existing = {
        f"{app}.{codename}"
        for app, codename in Permission.objects.using(using).values_list("content_type__app_label", "codename")
    }
    missing = {key: sorted(set(role.permissions) - existing) for key, role in ROLES.items()}
    return {key: labels for key, labels in missing.items() if labels}


def ensure_roles(apps=None, using: str = "default", *, warn: bool = True) -> dict[str, list[str]]:
    """Make each role's group hold exactly its permissions. Idempotent. Codenames that do not exist
    (yet) are left out, logged (unless `warn` is False: the data migration runs before later
    migrations' models exist), and returned by role."""
    apps = _apps(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    by_label = {
        f"{perm.content_type.app_label}.{perm.codename}": perm
        for perm in Permission.objects.using(using).select_related("content_type")
    }
    missing: dict[str, list[str]] = {}
    for role in ROLES.values():
        absent = sorted(label for label in set(role.permissions) if label not in by_label)
        if absent:
            missing[role.key] = absent
        if absent and warn:
            logger.warning("岗位“%s”所需的权限不存在，已跳过：%s", role.group, "、".join(absent))
        group, _ = Group.objects.using(using).get_or_create(name=role.group)
        group.permissions.set([by_label[label] for label in role.permissions if label in by_label])
    return missing


def name_permissions_in_chinese(apps=None, using: str = "default") -> int:
    """Rename Django's default permissions ("Can add 预约订单") to 可新增预约订单 etc. for every model;
    returns how many rows changed. Custom permissions keep the Chinese names their models give."""
    from django.conf import settings
    from django.utils import translation

    apps = _apps(apps)
    Permission = apps.get_model("auth", "Permission")
    wanted = {}
    # Third-party verbose names are lazy translations: read them in the site's language, not the
    # command's (a migration state holds them untranslated; post_migrate then corrects them).
    with translation.override(settings.LANGUAGE_CODE):
        for model in apps.get_models():
            opts = model._meta
            for action in opts.default_permissions:
                if action in DEFAULT_ACTIONS:
                    name = f"{DEFAULT_ACTIONS[action]}{opts.verbose_name}"[:255]
                    wanted[(opts.app_label, f"{action}_{opts.model_name}")] = name
    changed = []
    for perm in Permission.objects.using(using).select_related("content_type"):
        name = wanted.get((perm.content_type.app_label, perm.codename))
        if name and perm.name != name:
            perm.name = name
            changed.append(perm)
    Permission.objects.using(using).bulk_update(changed, ["name"])
    return len(changed)


def roles_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate (connected for the regional app only): every app's permissions first, as
    Django would create them after this signal for the apps listed later, then names and groups."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    name_permissions_in_chinese(using=using)
    ensure_roles(using=using)


def _apps(apps):
    if apps is None:
        from django.apps import apps as global_apps

        return global_apps
    return apps
