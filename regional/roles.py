"""The staff roles (岗位) as data: each job's group and the permissions it needs, written once.

`ensure_roles()` makes the groups match this table exactly; it runs after every migrate
(post_migrate, so a test database flushed between transactional tests gets them back) and from the
data migration. An app that adds a permission for a job adds its codename here, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

REGIONAL_ADMIN = "regional_admin"
HOTLINE = "hotline"
REFERRAL_DESK = "referral_desk"
FINANCE = "finance"
INTERFACE = "interface"
COMMISSION = "commission"


@dataclass(frozen=True)
class Role:
    key: str
    group: str  # the Group's name, what staff see
    summary: str
    permissions: tuple[str, ...]  # "app_label.codename"


def _view(app: str, *models: str) -> tuple[str, ...]:
    return tuple(f"{app}.view_{m}" for m in models)


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
            + (
                "booking.cancel_order",
                "booking.resolve_order",
                "booking.retry_patientnotification",
                "booking.change_noshowban",
            ),
        ),
        Role(
            REFERRAL_DESK,
            "转诊管理员",
            "处理双向转诊单及其提醒、预约，查看超时未处理的转诊。",
            _view("regional", "hospital", "department", "doctor")
            + _view("referral", "referral", "referralbooking", "referraltransition", "referralaccess")
            + _view("referral", "referralnotification", "overduereferral")
            + ("referral.change_referral", "referral.change_overduereferral"),
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
            + (
                "reconciliation.add_statement",
                "reconciliation.add_reconciliationrun",
                "reconciliation.run_reconciliation",
                "reconciliation.export_reconciliation",
                "reconciliation.change_discrepancy",
                "reconciliation.resolve_discrepancy",
            ),
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
            + (
                "regional.add_hospital",
                "regional.change_hospital",
                "regional.add_hospitalcredential",
                "regional.change_hospitalcredential",
                "regional.run_conformance",
                "booking.retry_outboxmessage",
                "booking.change_lostlock",
            ),
        ),
        Role(
            REGIONAL_ADMIN,
            "区域管理员",
            "管理医院、科室、医生、排班与预约规则，查看审计记录；唯一可查看完整个人信息（须填写原因）的岗位。",
            _MASTER_DATA_VIEW
            + _view("booking", "order", "ordertransition", "bookingrules", "noshowban", "waitlistentry")
            + _view("regional", "auditentry", "personaldatareveal", "messagelog")
            + (
                "regional.change_hospital",
                "regional.change_department",
                "regional.change_doctor",
                "booking.add_bookingrules",
                "booking.change_bookingrules",
                "booking.stop_schedule",
                "booking.change_noshowban",
                "regional.reveal_personal_data",
            ),
        ),
    )
}


def ensure_roles(apps=None, using: str = "default") -> None:
    """Make each role's group hold exactly its permissions. Idempotent; unknown codenames are an
    error, so a renamed permission cannot silently drop out of a role."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role in ROLES.values():
        wanted = set(role.permissions)
        found = []
        for label in wanted:
            app_label, codename = label.split(".", 1)
            perm = Permission.objects.using(using).filter(content_type__app_label=app_label, codename=codename).first()
            if perm is None:
                raise LookupError(f"岗位“{role.group}”所需的权限 {label} 不存在")
            found.append(perm)
        group, _ = Group.objects.using(using).get_or_create(name=role.group)
        group.permissions.set(found)
