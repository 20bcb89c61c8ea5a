"""Demo data for `make run` (DEBUG only, idempotent).

Creates the demo administrator, the two booking channels, three sandbox hospitals (三级, 二级,
一级) with departments, doctors and 14 days of sessions, registers them on the platform with
documented demo secrets, and then builds the center's data the way a real hospital does: each
sandbox hospital pushes HospitalInfo, DepartmentInfo, DoctorInfo and synchronizedWorkInfo as SOAP
envelopes to /ws/center. The web server is not running yet, so the HTTP exchanges are handed to
Django in process (sandbox/inprocess.py); the envelopes are the same as over the network.

Then the days before today (_demo_day.py beside it): paid and refunded bookings on the past two days,
the sandbox channel's bills with a few injected differences and yesterday reconciled, a booking rule
that opens the waitlist at DEMO003 with a full session and its queue, a session stopped by DEMO002
with its patients told, referrals from DEMO003 to DEMO001 in several states; and a staff account
per role of regional/roles.py.

Demo credentials (also in the README):
    admin:     demo / demo-admin-2026
    staff:     demo-<role> / demo-<role>-2026 (demo-finance, demo-hotline, demo-referral-desk, …)
    hospitals: DEMO001 / demo-secret-DEMO001, DEMO002 / demo-secret-DEMO002, DEMO003 / demo-secret-DEMO003
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.management.commands import _demo_day as demo_day
from config.management.commands import reconciliation_sandbox
from regional.errors import DomainError
from regional.services import hospital_onboard
from sandbox import demo, services
from sandbox.inprocess import DjangoInProcessAdapter

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-admin-2026"
DEMO_HOSPITALS = (
    ("DEMO001", "演示市第一人民医院", 3),
    ("DEMO002", "演示区人民医院", 2),
    ("DEMO003", "演示街道社区卫生服务中心", 1),
)
DEMO_CHANNELS = (("JKMZWX", "微信"), ("JKMYAPP", "APP"))


def demo_secret(hospital_no: str) -> str:
    return f"demo-secret-{hospital_no}"


class Command(BaseCommand):
    help = "生成演示数据（仅限DEBUG模式，可重复运行）：演示管理员、渠道、3家沙箱医院及排班，并经SOAP推送到平台"

    def add_arguments(self, parser):
        parser.add_argument(
            "--serve-port", type=int, metavar="PORT", help="平台随后监听的端口（沙箱医院接口地址和中心端地址用它）"
        )
        parser.add_argument("--days", type=int, default=14, help="生成多少天的排班（默认14天）")

    def handle(self, *args, serve_port: int | None, days: int, **options):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo 只能在 DEBUG 模式下运行（请设置 DJANGO_DEBUG=1）：演示账号和公开的演示密钥不得进入生产环境"
            )
        base = self.base_url(serve_port)
        self.ensure_superuser()
        self.ensure_channels()
        adapter = DjangoInProcessAdapter()
        failures = []
        for hospital_no, name, level in DEMO_HOSPITALS:
            sandbox = demo.hospital_build(
                hospital_no=hospital_no,
                name=name,
                level=level,
                center_url=f"{base}/ws/center",
                center_secret=demo_secret(hospital_no),
                days=days,
            )
            hospital_onboard(
                hospital_no=hospital_no,
                name=name,
                secret=demo_secret(hospital_no),
                endpoint_url=f"{base}/sandbox/his/{hospital_no}/ws",
            )
            self.stdout.write(
                f"沙箱医院 {hospital_no} {name}：{sandbox.schedules.count()} 个排班，接口 {base}/sandbox/his/{hospital_no}/ws"
            )
            failures += self.push(sandbox, adapter)
        if failures:
            raise CommandError("以下推送失败：" + "；".join(failures))
        # Finance: both payment channels' daily bills come from the sandbox channel in the demo, which
        # leaves out one payment, adds one and alters one per channel and day (差异 to work on).
        call_command(
            reconciliation_sandbox.Command(),
            "--missing-payment", "1", "--extra-payment", "1", "--amount-mismatch", "1",
            stdout=self.stdout,
        )  # fmt: skip
        demo_day.staff_accounts(self.stdout.write)
        days = demo_day.DemoDays(
            base_url=base, say=self.stdout.write, warn=lambda m: self.stderr.write(m), secret=demo_secret
        )
        if days.already_built():
            self.stdout.write("演示业务数据（预约、支付、对账、候补、停诊）已存在，未重复生成")
        else:
            days.build()
        self.stdout.write(self.style.SUCCESS("演示数据已就绪。管理后台账号 demo / demo-admin-2026"))

    @staticmethod
    def base_url(serve_port: int | None) -> str:
        parts = urlsplit(settings.PUBLIC_BASE_URL)
        if serve_port:
            host = parts.hostname or "127.0.0.1"
            parts = parts._replace(netloc=f"{host}:{serve_port}")
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    def ensure_superuser(self) -> None:
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USER).first()
        if user is None:
            user_model.objects.create_superuser(DEMO_USER, "demo@example.invalid", DEMO_PASSWORD)
            self.stdout.write(f"已创建演示管理员 {DEMO_USER} / {DEMO_PASSWORD}")
            return
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        self.stdout.write(f"演示管理员 {DEMO_USER} 已存在（密码已重置为 {DEMO_PASSWORD}）")

    def ensure_channels(self) -> None:
        from booking.models import Channel
        from booking.services.channels import channel_issue_token

        for code, name in DEMO_CHANNELS:
            if Channel.objects.filter(code=code).exists():
                self.stdout.write(f"渠道 {code} 已存在（令牌不变）")
                continue
            _channel, token = channel_issue_token(code=code, name=name)
            self.stdout.write(f"已创建渠道 {code}（{name}），令牌：{token}")

    def push(self, sandbox, adapter) -> list[str]:
        failures = []
        steps = (
            ("机构信息", lambda: services.center_push_hospital(hospital=sandbox, adapter=adapter), True),
            ("科室信息", lambda: services.center_push_departments(hospital=sandbox, adapter=adapter), True),
            ("医生信息", lambda: services.center_push_doctors(hospital=sandbox, adapter=adapter), True),
            ("排班信息", lambda: services.center_push_schedules(hospital=sandbox, adapter=adapter), False),
        )
        for label, push, required in steps:
            try:
                answer = push()
            except DomainError as exc:
                message = f"{sandbox.hospital_no} {label}：{exc.message}"
                self.stderr.write(message)
                if required:
                    failures.append(message)
                continue
            if answer.ok:
                self.stdout.write(f"  {sandbox.hospital_no} 推送{label}：{answer.summary()}")
            else:
                message = f"{sandbox.hospital_no} 推送{label}：{answer.summary()}"
                self.stderr.write(self.style.WARNING("  " + message))
                if required:
                    failures.append(message)
        return failures
