"""Finance (财务对账): the payment channels' daily bills, the reconciliations run over them, and
the differences found between the platform's payment ledger, the bills and the hospitals.

The ledger itself (every payment and refund of an order) is the booking app's `LedgerEntry`;
`LedgerEntryRecord` is a read-only proxy of it for the finance admin.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from booking.models import LedgerEntry, Order
from regional.messages.codes import PayChannel, WorkFlowStatus
from regional.models import Hospital

MONEY = {"max_digits": 12, "decimal_places": 2}


# The payment providers whose bills are reconciled are the ledger's payment channels, and a
# statement line's kind is the ledger's: both lists are stated once, there.
EntryKind = LedgerEntry.Kind


class StatementSource(models.Model):
    """Where one payment provider's daily bill (对账单) comes from.

    The bill is fetched by an adapter (an HTTP download configured here, or the same download from
    the sandbox channel at /sandbox/pay/<channel>/bill, which bills the platform's own ledger) or
    uploaded by finance staff. A provider's
    bill covers the platform's merchant account, so there is one source per provider.
    """

    UPLOAD, HTTP, SANDBOX = "upload", "http", "sandbox"
    ADAPTERS = [(UPLOAD, "仅人工上传"), (HTTP, "HTTP下载"), (SANDBOX, "沙箱渠道（演示/测试）")]
    # What `sandbox_options` may set at the sandbox channel (sandbox/payments.py checks the values).
    SANDBOX_KNOBS = (
        "missing_payment", "extra_payment", "amount_mismatch", "refund_channel_only", "refund_platform_only", "encoding",
    )  # fmt: skip

    name = models.CharField("名称", max_length=50)
    pay_channel = models.CharField("支付渠道", max_length=10, choices=PayChannel.choices, unique=True)
    merchant_id = models.CharField("商户号/支付宝账号", max_length=64, blank=True)
    adapter = models.CharField("获取方式", max_length=10, choices=ADAPTERS, default=UPLOAD)
    url = models.CharField(
        "下载地址",
        max_length=500,
        blank=True,
        help_text="HTTP下载时使用；可含 {date}（yyyyMMdd）、{day}（yyyy-MM-dd）和 {merchant} 占位符",
    )
    username = models.CharField("用户名", max_length=100, blank=True)
    secret_encrypted = models.TextField("密钥（已加密）", blank=True, editable=False)
    timeout_seconds = models.PositiveIntegerField("超时（秒）", default=60)
    sandbox_options = models.JSONField(
        "沙箱差异设置",
        default=dict,
        blank=True,
        help_text='仅沙箱渠道：如 {"missing_payment": 1, "extra_payment": 1, "amount_mismatch": 1, '
        '"refund_channel_only": 1, "refund_platform_only": 1, "encoding": "gbk"}',
    )
    is_active = models.BooleanField("启用", default=True)
    last_fetched_at = models.DateTimeField("最近获取时间", null=True, blank=True, editable=False)
    last_error = models.CharField("最近错误", max_length=500, blank=True, editable=False)

    class Meta:
        verbose_name = "对账单来源"
        verbose_name_plural = "对账单来源"
        ordering = ["pay_channel"]

    def __str__(self) -> str:
        return f"{self.name}（{self.get_pay_channel_display()}）"

    @property
    def layout(self) -> str:
        """The bill layout this provider writes (reconciliation.statements)."""
        return "alipay" if self.pay_channel == PayChannel.ALIPAY else "wechat"

    def set_secret(self, secret: str) -> None:
        from regional.pii import encrypt

        self.secret_encrypted = encrypt(secret) if secret else ""

    def secret(self) -> str:
        from regional.pii import decrypt

        return decrypt(self.secret_encrypted) if self.secret_encrypted else ""


class Statement(models.Model):
    """One day's bill from one payment provider, as imported: the file's identity and its totals.

    Importing the same day again replaces the bill and its lines in one transaction.
    """

    ORIGINS = [
        (StatementSource.UPLOAD, "人工上传"),
        (StatementSource.HTTP, "HTTP下载"),
        (StatementSource.SANDBOX, "沙箱渠道"),
    ]

    source = models.ForeignKey(
        StatementSource, on_delete=models.PROTECT, related_name="statements", verbose_name="来源"
    )
    pay_channel = models.CharField("支付渠道", max_length=10, choices=PayChannel.choices)
    bill_date = models.DateField("账单日期")
    layout = models.CharField(
        "格式", max_length=10, choices=[("wechat", "微信支付交易账单"), ("alipay", "支付宝业务明细")]
    )
    encoding = models.CharField("文件编码", max_length=20)
    account = models.CharField("账单中的商户号/账号", max_length=64, blank=True)
    filename = models.CharField("文件名", max_length=255, blank=True)
    sha256 = models.CharField("文件摘要（SHA-256）", max_length=64)
    size = models.PositiveBigIntegerField("文件大小（字节）", default=0)
    origin = models.CharField("来源方式", max_length=10, choices=ORIGINS)
    line_count = models.PositiveIntegerField("明细笔数", default=0)
    payment_count = models.PositiveIntegerField("支付笔数", default=0)
    payment_total = models.DecimalField("支付金额（元）", default=0, **MONEY)
    refund_count = models.PositiveIntegerField("退款笔数", default=0)
    refund_total = models.DecimalField("退款金额（元）", default=0, **MONEY)
    imported_at = models.DateTimeField("导入时间", default=timezone.now)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="导入人",
    )

    class Meta:
        verbose_name = "对账单"
        verbose_name_plural = "对账单"
        ordering = ["-bill_date", "pay_channel"]
        constraints = [models.UniqueConstraint(fields=["source", "bill_date"], name="uniq_statement_per_source_day")]

    def __str__(self) -> str:
        return f"{self.get_pay_channel_display()} {self.bill_date:%Y-%m-%d}"


class StatementLine(models.Model):
    """One transaction of a bill, a payment or a refund, as the provider reported it.

    `batch` is the merchant order number (商户订单号), which the platform sets to its own trade
    number; `pay_trade_no` is the provider's (微信订单号, 支付宝交易号). `hospital` is resolved
    from the ledger by `batch` (or from the hospital code the platform put in the bill's
    商户数据包/备注) so that runs can be scoped to one hospital.
    """

    # Lines are bulk-loaded, 100,000 a day: the database does not check these two references row by
    # row (measured: 2 s of deferred checks at commit per 100,000 lines). They hold by construction:
    # lines are written in the transaction that creates their statement, and get their hospital from
    # a join on the hospitals; deleting either goes through Django (CASCADE / SET_NULL).
    statement = models.ForeignKey(
        Statement,
        on_delete=models.CASCADE,
        related_name="lines",
        verbose_name="对账单",
        db_constraint=False,
        db_index=False,  # the (statement, line_no) index leads with it
    )
    pay_channel = models.CharField("支付渠道", max_length=10, choices=PayChannel.choices)
    bill_date = models.DateField("账单日期")
    line_no = models.PositiveIntegerField("行号")
    kind = models.CharField("类型", max_length=10, choices=EntryKind.choices)
    batch = models.CharField("商户订单号（交易流水号）", max_length=100)
    pay_trade_no = models.CharField("渠道交易号", max_length=100, blank=True)
    refund_no = models.CharField("退款单号", max_length=100, blank=True)
    amount = models.DecimalField("金额（元）", **MONEY)
    occurred_at = models.DateTimeField("交易时间")
    status = models.CharField("渠道状态", max_length=20, blank=True)
    hospital_hint = models.CharField("附加数据", max_length=128, blank=True)
    hospital = models.ForeignKey(
        Hospital,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="医院",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        verbose_name = "对账单明细"
        verbose_name_plural = "对账单明细"
        ordering = ["statement", "line_no"]
        # Few indexes on a table that takes 100,000 rows a day: a day's bill is read by its statement
        # (one per channel and day), single trades by Batch.
        indexes = [
            models.Index(fields=["statement", "line_no"], name="stmtline_statement_line"),
            models.Index(fields=["batch"], name="stmtline_batch"),
        ]

    def __str__(self) -> str:
        return f"{self.batch} {self.get_kind_display()} {self.amount}"


class ReconciliationRun(models.Model):
    """One reconciliation (对账) over a date range, for every hospital or one, every payment
    channel or one: the counts and totals seen on each side, and what came of it.

    Runs are idempotent: running a day again replaces that day's open discrepancies and keeps
    the resolved ones with their history.
    """

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "定时任务"
        MANUAL = "manual", "人工发起"

    class Status(models.TextChoices):
        QUEUED = "queued", "排队中"
        RUNNING = "running", "对账中"
        DONE = "done", "已完成"
        FAILED = "failed", "失败"

    class Result(models.TextChoices):
        PENDING = "", "—"
        BALANCED = "balanced", "平账"
        DISCREPANCIES = "discrepancies", "有差异"
        INCOMPLETE = "incomplete", "未完成（缺少对账单或医院未核对）"
        FAILED = "failed", "失败"

    class HospitalCheck(models.TextChoices):
        DISPUTED = "disputed", "仅核对状态不一致的订单"
        ALL = "all", "核对全部已支付订单"
        NONE = "none", "不核对医院状态"

    date_from = models.DateField("开始日期")
    date_to = models.DateField("结束日期")
    hospital = models.ForeignKey(
        Hospital, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="医院"
    )
    pay_channel = models.CharField("支付渠道", max_length=10, choices=PayChannel.choices, blank=True)
    hospital_check = models.CharField(
        "医院状态核对", max_length=10, choices=HospitalCheck.choices, default=HospitalCheck.DISPUTED
    )
    trigger = models.CharField("发起方式", max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.QUEUED)
    result = models.CharField("结果", max_length=15, choices=Result.choices, default=Result.PENDING, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="发起人",
    )
    created_at = models.DateTimeField("创建时间", default=timezone.now)
    started_at = models.DateTimeField("开始时间", null=True, blank=True)
    finished_at = models.DateTimeField("完成时间", null=True, blank=True)

    ledger_payment_count = models.PositiveIntegerField("平台支付笔数", default=0)
    ledger_payment_total = models.DecimalField("平台支付金额", default=0, **MONEY)
    ledger_refund_count = models.PositiveIntegerField("平台退款笔数", default=0)
    ledger_refund_total = models.DecimalField("平台退款金额", default=0, **MONEY)
    statement_payment_count = models.PositiveIntegerField("渠道支付笔数", default=0)
    statement_payment_total = models.DecimalField("渠道支付金额", default=0, **MONEY)
    statement_refund_count = models.PositiveIntegerField("渠道退款笔数", default=0)
    statement_refund_total = models.DecimalField("渠道退款金额", default=0, **MONEY)
    matched_count = models.PositiveIntegerField("一致笔数（交易流水号）", default=0)
    discrepancy_count = models.PositiveIntegerField("差异数", default=0)
    resolved_count = models.PositiveIntegerField("已处理过的差异（不再重复列出）", default=0)
    hospital_checked = models.PositiveIntegerField("已核对医院状态", default=0)
    hospital_unchecked = models.PositiveIntegerField("医院状态未能核对", default=0)
    missing_statements = models.TextField("缺少的对账单", blank=True)
    note = models.TextField("说明", blank=True)
    # Progress, written in committed updates while the worker runs (the run's page reads them).
    phase = models.CharField("当前步骤", max_length=200, blank=True)
    checks_done = models.PositiveIntegerField("已核对（渠道·日）", default=0)
    checks_total = models.PositiveIntegerField("需核对（渠道·日）", default=0)
    rows_read = models.PositiveIntegerField("已读取交易笔数", default=0)

    class Meta:
        verbose_name = "对账批次"
        verbose_name_plural = "对账批次"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["date_from", "date_to"], name="recon_run_range")]
        permissions = [("run_reconciliation", "可发起对账"), ("export_reconciliation", "可导出对账结果")]

    def __str__(self) -> str:
        span = f"{self.date_from:%Y-%m-%d}" if self.date_from == self.date_to else f"{self.date_from}至{self.date_to}"
        return f"对账 {span}（#{self.pk}）"

    @property
    def in_progress(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def failure(self) -> str:
        """Why a failed run stopped (its note), for its page."""
        return self.note if self.status == self.Status.FAILED else ""

    @property
    def ledger_net(self):
        return self.ledger_payment_total - self.ledger_refund_total

    @property
    def statement_net(self):
        return self.statement_payment_total - self.statement_refund_total


class StatementImport(models.Model):
    """One import of a day's bill, uploaded by finance staff or fetched from the source's adapter,
    as a background task: the file as received, its progress (rows read) and its outcome.

    The upload is kept here until the worker has imported it, so the request only stores it; a
    failed import leaves no statement and says why.
    """

    UPLOAD, FETCH = "upload", "fetch"
    KINDS = [(UPLOAD, "上传文件"), (FETCH, "从渠道获取")]

    class Status(models.TextChoices):
        QUEUED = "queued", "排队中"
        RUNNING = "running", "导入中"
        DONE = "done", "已完成"
        FAILED = "failed", "失败"

    source = models.ForeignKey(StatementSource, on_delete=models.PROTECT, related_name="+", verbose_name="来源")
    bill_date = models.DateField("账单日期")
    kind = models.CharField("方式", max_length=10, choices=KINDS)
    filename = models.CharField("文件名", max_length=255, blank=True)
    content = models.BinaryField("文件内容", null=True, editable=False)
    size = models.PositiveBigIntegerField("文件大小（字节）", default=0)
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField("当前步骤", max_length=200, blank=True)
    rows_read = models.PositiveIntegerField("已读取明细行数", default=0)
    statement = models.ForeignKey(
        Statement, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name="对账单"
    )
    replaced = models.BooleanField("替换了原对账单", default=False)
    error = models.CharField("错误", max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="发起人",
    )
    created_at = models.DateTimeField("创建时间", default=timezone.now)
    started_at = models.DateTimeField("开始时间", null=True, blank=True)
    finished_at = models.DateTimeField("完成时间", null=True, blank=True)

    class Meta:
        verbose_name = "对账单导入"
        verbose_name_plural = "对账单导入"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return (
            f"{self.get_kind_display()} {self.source.get_pay_channel_display()} {self.bill_date:%Y-%m-%d}（#{self.pk}）"
        )

    @property
    def in_progress(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class Discrepancy(models.Model):
    """One difference between the platform's ledger, a payment channel's bill and a hospital's
    view of an order, found by a reconciliation: what kind, the amounts on each side, and its
    resolution (open → explained / corrected) with who and why.
    """

    class Type(models.TextChoices):
        CHANNEL_ONLY = "channel_only", "渠道已收款，平台无记录"
        PLATFORM_ONLY = "platform_only", "平台有支付，渠道无记录"
        AMOUNT_MISMATCH = "amount_mismatch", "支付金额不一致"
        TRADE_NO_MISMATCH = "trade_no_mismatch", "渠道交易号不一致"
        REFUND_CHANNEL_ONLY = "refund_channel_only", "渠道已退款，平台无退款记录"
        REFUND_PLATFORM_ONLY = "refund_platform_only", "平台有退款，渠道未退款"
        REFUND_AMOUNT_MISMATCH = "refund_amount_mismatch", "退款金额不一致"
        CROSS_DAY = "cross_day", "跨日入账（在相邻日期的对账单或流水中）"
        HOSPITAL_CANCELLED_PAID = "hospital_cancelled_paid", "医院已退号，但款项未退"
        HOSPITAL_UNPAID = "hospital_unpaid", "渠道已收款，医院显示未支付"
        HOSPITAL_ACTIVE_REFUNDED = "hospital_active_refunded", "已退款，医院仍显示有效预约"
        HOSPITAL_FEE_MISMATCH = "hospital_fee_mismatch", "医院挂号费与支付金额不一致"
        HOSPITAL_NO_ORDER = "hospital_no_order", "医院查无此单或拒绝查询"

    HOSPITAL_TYPES = (
        Type.HOSPITAL_CANCELLED_PAID,
        Type.HOSPITAL_UNPAID,
        Type.HOSPITAL_ACTIVE_REFUNDED,
        Type.HOSPITAL_FEE_MISMATCH,
        Type.HOSPITAL_NO_ORDER,
    )

    class Status(models.TextChoices):
        OPEN = "open", "待处理"
        EXPLAINED = "explained", "已说明"
        CORRECTED = "corrected", "已更正"

    run = models.ForeignKey(
        ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies", verbose_name="对账批次"
    )
    day = models.DateField("业务日期")
    type = models.CharField("差异类型", max_length=30, choices=Type.choices)
    entry_kind = models.CharField("款项", max_length=10, choices=EntryKind.choices, default=EntryKind.PAYMENT)
    pay_channel = models.CharField("支付渠道", max_length=10, choices=PayChannel.choices)
    hospital = models.ForeignKey(
        Hospital, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="医院"
    )
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name="订单"
    )
    batch = models.CharField("交易流水号", max_length=100)
    pay_trade_no = models.CharField("渠道交易号", max_length=100, blank=True)
    ledger_amount = models.DecimalField("平台金额", null=True, blank=True, **MONEY)
    statement_amount = models.DecimalField("渠道金额", null=True, blank=True, **MONEY)
    difference = models.DecimalField("差额（平台−渠道）", default=0, **MONEY)
    hospital_status = models.CharField("医院订单状态", max_length=20, blank=True, choices=WorkFlowStatus.choices)
    detail = models.CharField("说明", max_length=500, blank=True)
    status = models.CharField("处理状态", max_length=10, choices=Status.choices, default=Status.OPEN)
    resolution = models.CharField("处理意见", max_length=500, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="处理人",
    )
    resolved_at = models.DateTimeField("处理时间", null=True, blank=True)
    created_at = models.DateTimeField("发现时间", default=timezone.now)

    class Meta:
        verbose_name = "对账差异"
        verbose_name_plural = "对账差异"
        ordering = ["-day", "status", "type", "batch"]
        constraints = [
            # One open difference of a kind per trade and day: a re-run replaces, never duplicates.
            models.UniqueConstraint(
                fields=["day", "pay_channel", "batch", "type"],
                condition=Q(status="open"),
                name="uniq_open_discrepancy",
            )
        ]
        indexes = [
            models.Index(fields=["status", "day"], name="discrepancy_status_day"),
            models.Index(fields=["hospital", "day"], name="discrepancy_hospital_day"),
            models.Index(fields=["batch"], name="discrepancy_batch"),
        ]
        permissions = [("resolve_discrepancy", "可处理对账差异")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.batch} {self.get_type_display()}"


class LedgerEntryRecord(LedgerEntry):
    """The payment ledger (booking's LedgerEntry) as finance staff browse it, with totals: read-only."""

    class Meta:
        proxy = True
        verbose_name = "支付流水（财务）"
        verbose_name_plural = "支付流水（财务）"
