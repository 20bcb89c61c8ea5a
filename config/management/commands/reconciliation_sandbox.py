"""Point both payment channels at the sandbox channel (a simulated provider that bills the platform's
own ledger, downloaded over HTTP from /sandbox/pay/<channel>/bill), with differences to inject, and
optionally reconcile a day: for demos and drills. Project wiring: it names the finance app and the
sandbox, so it lives in the project package.

    manage.py reconciliation_sandbox --missing-payment 1 --extra-payment 1 --encoding gbk --reconcile 2026-11-25
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from reconciliation import services
from reconciliation.models import StatementSource
from regional.errors import DomainError
from regional.messages.codes import PayChannel
from sandbox.payments import Knobs

KNOBS = ("missing_payment", "extra_payment", "amount_mismatch", "refund_channel_only", "refund_platform_only")


class Command(BaseCommand):
    help = "把微信支付和支付宝的对账单来源设为沙箱渠道（可注入差异），并可立即对账某一天"

    def add_arguments(self, parser):
        for knob in KNOBS:
            parser.add_argument(f"--{knob.replace('_', '-')}", type=int, default=0)
        parser.add_argument("--encoding", default="utf-8", help="utf-8、utf-8-sig 或 gbk")
        parser.add_argument(
            "--reconcile", nargs="?", const="yesterday", default=None, help="对账日期（yyyy-MM-dd），默认昨天"
        )

    def handle(self, *args, **options):
        settings = {knob: options[knob] for knob in KNOBS if options[knob]}
        settings["encoding"] = options["encoding"]
        try:
            Knobs.from_options(settings)
        except DomainError as exc:
            raise CommandError(exc.message)
        for channel in PayChannel:
            source, _ = StatementSource.objects.update_or_create(
                pay_channel=channel.value,
                defaults={
                    "name": f"{channel.provider}（沙箱）",
                    "adapter": StatementSource.SANDBOX,
                    "sandbox_options": settings,
                },
            )
            if not source.username or not source.secret_encrypted:
                # The sandbox channel serves only a source with credentials, like a real gateway.
                source.username = source.username or "platform"
                source.set_secret(secrets.token_urlsafe(24))
                source.save(update_fields=["username", "secret_encrypted"])
            self.stdout.write(f"{source}：沙箱渠道，差异设置 {settings}")
        if options["reconcile"] is None:
            return
        if options["reconcile"] == "yesterday":
            day = timezone.localdate() - dt.timedelta(days=1)
        else:
            try:
                day = dt.date.fromisoformat(options["reconcile"])
            except ValueError:
                raise CommandError("对账日期格式应为yyyy-MM-dd")
        fetched = services.statements_fetch_due(bill_date=day)
        try:
            run = services.reconciliation_run(date_from=day, date_to=day)
        except DomainError as exc:
            raise CommandError(exc.message)
        self.stdout.write(f"对账单：{fetched}")
        self.stdout.write(
            f"{run}：{run.get_result_display()}，一致{run.matched_count}笔，差异{run.discrepancy_count}条"
        )
