"""A working region for the demo (`seed_demo`): a staff account per role, and the days before today
as the platform would have lived them, so that every role's pages have something to work on.

Everything goes through the services a channel, a hospital or staff would use: bookings and payments
through `order_lock` / `order_pay` (with `now=` in the past), cancellations with their refunds through
`order_cancel`, the stopped session through the sandbox hospital's stopWorkNotice, the bills from
the sandbox channel's download, the reconciliation through `reconciliation_run`. The platform's
calls to the hospitals and the bill downloads are handed to Django in process (the web server is
not running yet), over the same HTTP requests as later over the network.

All personal data is visibly fictitious: 演示患者 names, ID numbers of region 999999 (which does
not exist) with a valid check digit, 134 0000 phone numbers.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from booking.models import BookingRules, Channel, Order, Schedule, WaitlistEntry
from booking.rules import rules_cache_clear
from booking.services.orders import order_cancel, order_lock, order_pay
from booking.services.patients import Patient
from booking.services.waitlist import waitlist_join
from reconciliation import services as finance
from reconciliation.models import ReconciliationRun, Statement, StatementSource
from referral import services as referrals
from referral.models import Referral
from regional import hospital_wsdl, idnumber
from regional.errors import DomainError
from regional.messages.codes import PayChannel
from regional.models import Department, Hospital
from regional.roles import ROLES, ensure_roles
from sandbox.inprocess import DjangoInProcessAdapter
from sandbox.models import SandboxSchedule
from sandbox.services import schedule_stop_and_notify

Say = Callable[[str], None]

WAITLIST_HOSPITAL = "DEMO003"
STOP_HOSPITAL = "DEMO002"


def staff_password(role_key: str) -> str:
    return f"demo-{role_key.replace('_', '-')}-2026"


def staff_username(role_key: str) -> str:
    return f"demo-{role_key.replace('_', '-')}"


def staff_accounts(say: Say) -> None:
    """One staff account per role (regional/roles.py), in that role's group only (demo passwords)."""
    ensure_roles()
    users = get_user_model()
    for key, role in ROLES.items():
        username, password = staff_username(key), staff_password(key)
        user = users.objects.filter(username=username).first() or users(username=username)
        user.is_staff, user.is_active, user.is_superuser = True, True, False
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=role.group)])
        say(f"岗位账号 {role.group}：{username} / {password}")


def patient(n: int) -> Patient:
    first17 = f"999999{dt.date(1960, 1, 1) + dt.timedelta(days=n * 37 % 20000):%Y%m%d}{n % 1000:03d}"
    return Patient(name=f"演示患者{n:03d}", id_card=first17 + idnumber.check_digit(first17), phone=f"1340000{n:04d}")


@contextmanager
def in_process(base_url: str) -> Iterator[requests.Session]:
    """Hand the platform's calls to the demo hospitals (and a session for the bill downloads) to Django
    in process, for URLs under `base_url` only; everything else goes to the network as usual."""
    adapter = DjangoInProcessAdapter()
    shared = hospital_wsdl._shared_session()  # the one session every hospital call goes through
    prefix = base_url.rstrip("/") + "/"
    previous = shared.adapters.get(prefix)
    shared.mount(prefix, adapter)
    downloads = requests.Session()
    downloads.mount(prefix, adapter)
    try:
        yield downloads
    finally:
        del shared.adapters[prefix]
        if previous is not None:
            shared.mount(prefix, previous)
        hospital_wsdl.clear_clients()  # WSDLs loaded in process are fine, but start the server clean


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


class DemoDays:
    """The days before today, built once (a second seed finds the demo's orders and leaves them)."""

    def __init__(self, *, base_url: str, say: Say, warn: Say, secret: Callable[[str], str]):
        self.base_url, self.say, self.warn, self.secret = base_url, say, warn, secret
        self.channels = list(Channel.objects.filter(code__in=("JKMZWX", "JKMYAPP")).order_by("code"))
        self.hospitals = {h.hospital_no: h for h in Hospital.objects.filter(hospital_no__startswith="DEMO")}
        self.n = 0

    def already_built(self) -> bool:
        # Names are stored encrypted; the demo's own payment trade numbers are plain and start with DEMO.
        return Order.objects.filter(hospital__in=self.hospitals.values(), pay_trade_no__startswith="DEMO").exists()

    def build(self) -> None:
        today = timezone.localdate()
        with in_process(self.base_url) as downloads:
            two_days_ago, yesterday = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
            self.paid_day(two_days_ago)
            self.paid_day(yesterday)
            self.waitlist()
            self.stopped_session()
            self.reconcile(yesterday, downloads)
            self.referrals(downloads)
        self.say(
            f"财务演示：{two_days_ago:%Y-%m-%d}和{yesterday:%Y-%m-%d}有支付和退款，{yesterday:%Y-%m-%d}已对账（含差异），"
            f"{two_days_ago:%Y-%m-%d}尚未对账，可在“对账批次 › 立即对账”中对它对账"
        )

    # -- bookings ------------------------------------------------------------------------------

    def schedules(self, hospital_no: str, first: dt.date, count: int) -> list[Schedule]:
        return list(
            Schedule.objects.filter(
                hospital=self.hospitals[hospital_no], work_date__gte=first, status=Schedule.NORMAL, remaining__gt=0
            ).order_by("work_date", "start_time", "work_id")[:count]
        )

    def book(self, schedule: Schedule, at: dt.datetime, *, pay_channel: str | None) -> Order | None:
        """A patient books (and pays online through `pay_channel`, unless None) at `at`."""
        self.n += 1
        channel = self.channels[self.n % len(self.channels)]
        try:
            order, _ = order_lock(
                channel=channel,
                hospital_no=schedule.hospital.hospital_no,
                work_id=schedule.work_id,
                patient=patient(self.n),
                now=at,
            )
            if pay_channel:
                order, _ = order_pay(
                    channel=channel,
                    order_no=order.order_no,
                    pay_type=Order.PAY_ONLINE,
                    amount=order.fee,
                    pay_trade_no=f"DEMO{at:%Y%m%d%H%M}{self.n:04d}",
                    pay_channel=pay_channel,
                    now=at + dt.timedelta(seconds=30),  # within the shortest lock time (1 minute)
                )
        except DomainError as exc:
            self.warn(f"演示预约未成功（{schedule.work_id}）：{exc.message}")
            return None
        return order

    def paid_day(self, day: dt.date) -> None:
        """Six paid bookings a day (both payment channels), and two of them cancelled the same evening
        with their refunds."""
        # Sessions of tomorrow on (`seed_demo --days 2` builds only today and tomorrow), booked ahead.
        sessions = self.schedules("DEMO001", timezone.localdate() + dt.timedelta(days=1), 6)
        paid = []
        for i, schedule in enumerate(sessions):
            channel = PayChannel.WEPAY if i % 2 == 0 else PayChannel.ALIPAY
            order = self.book(schedule, local(day, 9, 5 * i), pay_channel=channel)
            if order:
                paid.append(order)
        for order in paid[-2:]:
            self.cancel(order, local(day, 20, 30), "行程有变")

    def cancel(self, order: Order, at: dt.datetime, reason: str) -> None:
        channel = Channel.objects.get(pk=order.channel_id)
        try:
            order_cancel(channel=channel, order_no=order.order_no, reason=reason, now=at)
        except DomainError as exc:
            self.warn(f"演示退号未成功（{order.order_no}）：{exc.message}")
            return

    def waitlist(self) -> None:
        """A booking rule opens the waitlist at one hospital; one of its sessions is full and has a queue."""
        hospital = self.hospitals[WAITLIST_HOSPITAL]
        BookingRules.objects.update_or_create(hospital=hospital, defaults={"waitlist_close_minutes": 60})
        rules_cache_clear()
        found = self.schedules(WAITLIST_HOSPITAL, timezone.localdate() + dt.timedelta(days=1), 1)
        if not found:
            self.warn(f"{WAITLIST_HOSPITAL}没有可预约的排班，未生成候补演示")
            return
        schedule = found[0]
        now = timezone.now()
        for _ in range(schedule.remaining):
            self.book(schedule, now, pay_channel=PayChannel.WEPAY if self.n % 3 else None)
        for _ in range(2):
            self.n += 1
            try:
                waitlist_join(channel=self.channels[0], schedule_id=schedule.pk, patient=patient(self.n), now=now)
            except DomainError as exc:
                self.warn(f"演示候补未成功：{exc.message}")
        waiting = WaitlistEntry.objects.filter(schedule=schedule, status=WaitlistEntry.WAITING).count()
        self.say(
            f"候补演示：{hospital.name}的预约规则设置了“候补截止（开诊前60分钟）”，"
            f"排班{schedule.work_id}已满，{waiting}人候补"
        )

    def stopped_session(self) -> None:
        """A session with patients booked, then stopped by its hospital (stopWorkNotice over SOAP)."""
        found = self.schedules(STOP_HOSPITAL, timezone.localdate() + dt.timedelta(days=1), 1)
        if not found:
            return
        schedule = found[0]
        now = timezone.now()
        for i in range(3):
            self.book(schedule, now, pay_channel=PayChannel.ALIPAY if i else None)
        his = SandboxSchedule.objects.get(hospital__hospital_no=STOP_HOSPITAL, work_id=schedule.work_id)
        answer = schedule_stop_and_notify(schedule=his, reason="医生临时外出开会", adapter=DjangoInProcessAdapter())
        affected = Order.objects.filter(schedule=schedule).count()
        if answer.ok:
            self.say(f"停诊演示：{schedule.hospital.name}排班{schedule.work_id}已停诊，影响{affected}位患者（已通知）")
        else:
            self.warn(f"停诊演示未成功：{answer.summary()}")

    # -- referrals -----------------------------------------------------------------------------

    def referrals(self, http: requests.Session) -> None:
        """Referrals from the community centre to the city hospital in several states: the HIS posts
        each over the referral servlet, the doctors act through the services their forms call."""
        sender, receiver = self.hospitals["DEMO003"], self.hospitals["DEMO001"]
        department = Department.objects.filter(hospital=receiver, is_deleted=False).order_by("department_id").first()
        doctor = referrals.Actor.doctor(sender, "DEMOYS01", "测试医生一")
        desk = referrals.Actor.doctor(receiver, "DEMOYS02", "测试医生二")
        plan = ("draft", "submitted", "submitted", "accepted", "rejected", "completed")
        done = []
        for i, state in enumerate(plan, 1):
            self.n += 1
            person = patient(self.n)
            values = {
                "orderid": f"DEMO-ZZ-{i:03d}", "fqyydm": sender.hospital_no, "fqyymc": sender.name,
                "fqksdm": "NK", "fqksmc": "内科", "fqysgh": "DEMOYS01", "fqysxm": "测试医生一", "brlx": "1",
                "hzxm": person.name, "jzkh": f"DEMO{self.n:06d}", "jzklx": "0", "sfzh": person.id_card,
                "csrq": person.id_card[6:14], "lxdh": person.phone, "jtdz": "演示市演示路1号",
                "cbzd": "高血压（演示）", "bszy": "头晕三天（演示）", "zyjws": "无", "zlqk": "口服降压药",
                "zzmd": "进一步诊治", "jjcd": "2", "mzzycxbz": "mz",
            }  # fmt: skip
            body = "<referral>" + "".join(f"<{k}>{v}</{k}>" for k, v in values.items()) + "</referral>"
            response = http.post(
                f"{self.base_url}/referral/api/SxzzAppServlet",
                data=body.encode("utf-8"),
                headers={"Content-Type": "text/xml; charset=UTF-8"},
                auth=(sender.hospital_no, self.secret(sender.hospital_no)),
                timeout=30,
            )
            referral = Referral.objects.filter(sending_hospital=sender, order_id=values["orderid"]).first()
            if response.status_code != 200 or referral is None:
                self.warn(f"演示转诊单{values['orderid']}未能创建（HTTP {response.status_code}）")
                continue
            try:
                if state != "draft":
                    referral = referrals.referral_submit(
                        referral=referral,
                        actor=doctor,
                        receiving_hospital=receiver,
                        receiving_department=department,
                        urgency=referral.urgency or "2",
                        purpose="进一步诊治",
                    )
                if state in ("accepted", "completed"):
                    referral = referrals.referral_accept(referral=referral, actor=desk, note="请患者明日上午来院")
                if state == "completed":
                    referral = referrals.referral_arrive(referral=referral, actor=desk)
                    referral = referrals.referral_complete(referral=referral, actor=desk, note="诊治完毕")
                if state == "rejected":
                    referral = referrals.referral_reject(referral=referral, actor=desk, reason="本院该科室床位已满")
            except DomainError as exc:
                self.warn(f"演示转诊单{values['orderid']}：{exc.message}")
                continue
            done.append(referral.get_status_display())
        self.say(f"转诊演示：{sender.name}转往{receiver.name}的转诊单{len(done)}份（{'、'.join(done)}）")

    # -- finance -------------------------------------------------------------------------------

    def reconcile(self, day: dt.date, downloads: requests.Session) -> None:
        """Import the day's bills from the sandbox channel (which leaves out, adds and alters a few
        trades: see reconciliation_sandbox) and reconcile the day."""
        for source in StatementSource.objects.filter(adapter=StatementSource.SANDBOX, is_active=True):
            if Statement.objects.filter(source=source, bill_date=day).exists():
                continue
            url = f"{self.base_url}/sandbox/pay/{source.pay_channel}/bill?date={day:%Y%m%d}"
            response = downloads.get(url, auth=(source.username, source.secret()), timeout=30)
            if response.status_code != 200:
                self.warn(f"下载{source}对账单失败：HTTP {response.status_code}")
                continue
            try:
                finance.statement_import(
                    source=source,
                    bill_date=day,
                    file=io.BytesIO(response.content),
                    filename=f"{source.pay_channel}_{day:%Y%m%d}.csv",
                    origin=StatementSource.SANDBOX,
                )
            except DomainError as exc:
                self.warn(f"导入{source}对账单失败：{exc.message}")
        run = finance.reconciliation_run(date_from=day, date_to=day, trigger=ReconciliationRun.Trigger.SCHEDULE)
        self.say(f"{run}：{run.get_result_display()}，一致{run.matched_count}笔，差异{run.discrepancy_count}条")
