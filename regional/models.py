"""Master data of the region (hospitals, departments, doctors), hospital credentials, and the
interface message log. The ground floor: nothing here imports booking, referral or reconciliation.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from regional.messages.codes import OutpatientType
from regional.pii import EncryptedTextField


def degree_level(degree_code: str, degree_name: str) -> int:
    """1–3 from a hospital's degree (一级/二级/三级); 0 unknown."""
    text = f"{degree_code}{degree_name}"
    for level, marks in ((3, ("三级", "3")), (2, ("二级", "2")), (1, ("一级", "1"))):
        if any(mark in text for mark in marks):
            return level
    return 0


class Hospital(models.Model):
    """A medical institution of the region (机构), identified by its HospitalNo.

    Master data is owned by the hospital and arrives over `HospitalInfo`; the integration
    settings (its SOAP address, version) are set by regional staff when onboarding it.
    """

    SOAP_11, SOAP_12 = "1.1", "1.2"
    PART_QUALIFIED, PART_UNQUALIFIED = "qualified", "unqualified"
    ACTION_OPERATION, ACTION_NAMESPACE, ACTION_EMPTY = "operation", "namespace", "empty"
    INTERFACE_VERSIONS = ("2.0", "2.1", "2.2", "2.3", "2.4")

    hospital_no = models.CharField("医院编号", max_length=36, unique=True)
    name = models.CharField("机构名称", max_length=100)
    short_name = models.CharField("机构简称", max_length=100, blank=True)
    degree_code = models.CharField("级别编码", max_length=20, blank=True)
    degree_name = models.CharField("级别名称", max_length=20, blank=True)
    phone = models.CharField("电话", max_length=20, blank=True)
    address = models.CharField("地址", max_length=100, blank=True)
    description = models.TextField("机构简介", blank=True)
    website = models.CharField("医院网址", max_length=30, blank=True)
    bus_route = models.CharField("公交路线", max_length=300, blank=True)
    seq_no = models.IntegerField("排序", null=True, blank=True)
    is_deleted = models.BooleanField("已删除", default=False, db_index=True)
    # Integration settings (CONTRACT.md section 2): where and how the platform calls this hospital.
    endpoint_url = models.URLField("医院端接口地址", max_length=300, blank=True)
    wsdl_url = models.URLField("医院端WSDL地址", max_length=300, blank=True)
    soap_namespace = models.CharField("SOAP命名空间", max_length=200, blank=True)
    soap_part_name = models.CharField("参数名", max_length=50, default="xml")
    # Without a WSDL, how the platform writes the part and the SOAPAction: JAX-WS/CXF services expect an
    # unqualified part (<xmlStr>, not <ns:xmlStr>) and an empty SOAPAction, .NET asmx the namespace + name.
    soap_part_form = models.CharField(
        "参数元素形式",
        max_length=12,
        default=PART_QUALIFIED,
        choices=[
            (PART_QUALIFIED, "带命名空间（qualified：.NET、Spyne 等）"),
            (PART_UNQUALIFIED, "不带命名空间（unqualified：JAX-WS/CXF 等 Java 服务）"),
        ],
        help_text="未配置WSDL时生效。医院报错说期望不带命名空间的参数元素（如 <{}xmlStr>）时选“不带命名空间”",
    )
    soap_action_style = models.CharField(
        "SOAPAction",
        max_length=10,
        default=ACTION_OPERATION,
        choices=[
            (ACTION_OPERATION, "操作名（confirmRegistration）"),
            (ACTION_NAMESPACE, "命名空间+操作名（如 http://tempuri.org/confirmRegistration，.NET asmx）"),
            (ACTION_EMPTY, "空（JAX-WS/CXF）"),
        ],
        help_text="未配置WSDL时生效",
    )
    soap_version = models.CharField(
        "SOAP版本", max_length=3, default=SOAP_11, choices=[(SOAP_11, "SOAP 1.1"), (SOAP_12, "SOAP 1.2")]
    )
    soap_encoding = models.CharField("报文编码", max_length=20, default="UTF-8")
    interface_version = models.CharField(
        "接口版本", max_length=10, default="2.4", help_text="V2.0–V2.4，决定发送哪些可选元素"
    )
    created_at = models.DateTimeField("创建时间", auto_now_add=True)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "医院"
        verbose_name_plural = "医院"
        ordering = ["seq_no", "hospital_no"]

    def __str__(self) -> str:
        return f"{self.name}（{self.hospital_no}）"

    @property
    def level(self) -> int:
        """1–3 from the degree (一级/二级/三级), for telling up- from down-referrals; 0 unknown."""
        return degree_level(self.degree_code, self.degree_name)


def hash_secret(secret: str, key: str | None = None) -> str:
    # Secrets are 32 random bytes, so a fast keyed hash is as safe as a slow KDF and keeps SOAP fast.
    key = key if key is not None else settings.HOSPITAL_SECRET_KEYS[0]
    return hmac.new(key.encode(), secret.encode(), hashlib.sha256).hexdigest()


def _secret_keys() -> list[str]:
    # DJANGO_SECRET_KEY last: hashes from before HOSPITAL_SECRET_KEYS existed still match once.
    return [*settings.HOSPITAL_SECRET_KEYS, settings.SECRET_KEY]


class HospitalImage(models.Model):
    """The hospital's picture (5.1 `Image`, up to 4 MB), in a table of its own: on the hospital's row
    it rode along with every query that joins the hospital (each order, each schedule, the credential
    cache), megabytes per row read."""

    hospital = models.OneToOneField(
        Hospital, primary_key=True, on_delete=models.CASCADE, related_name="picture", verbose_name="医院"
    )
    image = models.BinaryField("图片", editable=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "医院图片"
        verbose_name_plural = "医院图片"

    def __str__(self) -> str:
        return f"医院{self.hospital_id}的图片"


class HospitalCredential(models.Model):
    """How a hospital proves who it is (CONTRACT.md section 4): a secret, and an IP allow-list."""

    hospital = models.OneToOneField(Hospital, on_delete=models.CASCADE, related_name="credential", verbose_name="医院")
    secret_hash = models.CharField("密钥摘要", max_length=64, editable=False)
    allowed_networks = models.TextField("IP白名单", blank=True, help_text="每行一个IP或网段（CIDR），可为空")
    is_active = models.BooleanField("启用", default=True)
    rotated_at = models.DateTimeField("密钥更新时间", default=timezone.now)

    class Meta:
        verbose_name = "医院接入凭证"
        verbose_name_plural = "医院接入凭证"

    def __str__(self) -> str:
        return f"{self.hospital.hospital_no} 的接入凭证"

    @staticmethod
    def generate_secret() -> str:
        return secrets.token_urlsafe(32)

    def set_secret(self, secret: str) -> None:
        self.secret_hash = hash_secret(secret)
        self.rotated_at = timezone.now()

    def check_secret(self, secret: str) -> bool:
        """Whether `secret` is this hospital's; a hash under an older key moves to the newest one."""
        if not self.secret_hash:
            return False
        for index, key in enumerate(_secret_keys()):
            if hmac.compare_digest(self.secret_hash, hash_secret(secret, key)):
                if index:
                    self.secret_hash = hash_secret(secret)
                    HospitalCredential.objects.filter(pk=self.pk).update(secret_hash=self.secret_hash)
                return True
        return False

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        nets = []
        for line in self.allowed_networks.replace(",", "\n").splitlines():
            if line.strip():
                nets.append(ipaddress.ip_network(line.strip(), strict=False))
        return nets

    def allows_address(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks())


class Department(models.Model):
    """A department (科室) of a hospital; a tree through ParentDepartmentId."""

    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="departments", verbose_name="医院")
    department_id = models.CharField("科室编号", max_length=36)
    name = models.CharField("科室名称", max_length=200)
    name_abbr = models.CharField("拼音简写", max_length=100, blank=True, db_index=True)
    gb_id = models.CharField("标准科室编码（一级）", max_length=20, blank=True)
    gb_name = models.CharField("标准科室名称", max_length=200, blank=True)
    professional_gb_id = models.CharField("标准科室编码（二级）", max_length=20, blank=True)
    professional_gb_name = models.CharField("专科名称", max_length=20, blank=True)
    professional_abbr = models.CharField("专科拼音简写", max_length=100, blank=True)
    description = models.TextField("科室描述", blank=True)
    parent_department_id = models.CharField("上级科室编码", max_length=36, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children", verbose_name="上级科室"
    )
    is_hospitalization = models.BooleanField("住院科室", default=False)
    is_outpatient = models.BooleanField("门诊科室", default=False)
    outpatient_type = models.CharField("门诊类型", max_length=1, blank=True, choices=OutpatientType.choices)
    location = models.CharField("科室位置", max_length=200, blank=True)
    seq_no = models.IntegerField("排序", null=True, blank=True)
    is_deleted = models.BooleanField("已删除", default=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "科室"
        verbose_name_plural = "科室"
        constraints = [
            models.UniqueConstraint(fields=["hospital", "department_id"], name="uniq_department_per_hospital")
        ]
        ordering = ["hospital", "seq_no", "department_id"]
        indexes = [models.Index(fields=["name_abbr"], name="department_abbr_prefix", opclasses=["varchar_pattern_ops"])]

    def __str__(self) -> str:
        return f"{self.name}（{self.department_id}）"


class Doctor(models.Model):
    """A doctor (医生) of a hospital, identified by the hospital's own DoctorId (工号)."""

    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="doctors", verbose_name="医院")
    doctor_id = models.CharField("医生编号", max_length=36)
    name = models.CharField("姓名", max_length=20)
    name_abbr = models.CharField("拼音简写", max_length=200, blank=True, db_index=True)
    sex_code = models.CharField("性别编码", max_length=20, blank=True)
    sex_name = models.CharField("性别", max_length=20, blank=True)
    education_code = models.CharField("学历编码", max_length=20, blank=True)
    education_name = models.CharField("学历", max_length=20, blank=True)
    position_code = models.CharField("职务编码", max_length=20, blank=True)
    position_name = models.CharField("职务", max_length=20, blank=True)
    practice_year = models.CharField("从医年份", max_length=20, blank=True)
    skill = models.CharField("特长", max_length=300, blank=True)
    description = models.TextField("详细介绍", blank=True)
    title_code = models.CharField("职称编码", max_length=20, blank=True)
    title = models.CharField("职称", max_length=100, blank=True)
    department_code = models.CharField("科室编号", max_length=36)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="doctors", verbose_name="科室"
    )
    is_expert = models.BooleanField("专家", default=False)
    seq_no = models.IntegerField("排序", null=True, blank=True)
    is_deleted = models.BooleanField("已删除", default=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "医生"
        verbose_name_plural = "医生"
        constraints = [models.UniqueConstraint(fields=["hospital", "doctor_id"], name="uniq_doctor_per_hospital")]
        ordering = ["hospital", "seq_no", "doctor_id"]
        # Channels search doctors by pinyin initials as a prefix (`LIKE 'ZS%'`): pattern_ops lets
        # PostgreSQL use the index whatever the database collation.
        indexes = [models.Index(fields=["name_abbr"], name="doctor_abbr_prefix", opclasses=["varchar_pattern_ops"])]

    def __str__(self) -> str:
        return f"{self.name}（{self.doctor_id}）"


class DoctorIcon(models.Model):
    """The doctor's photo (5.3 `Icon`, up to 2 MB), apart from the doctor's row for the same reason as
    HospitalImage: doctor lists and schedule reads join the doctor."""

    doctor = models.OneToOneField(
        Doctor, primary_key=True, on_delete=models.CASCADE, related_name="portrait", verbose_name="医生"
    )
    icon = models.BinaryField("头像", editable=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "医生头像"
        verbose_name_plural = "医生头像"

    def __str__(self) -> str:
        return f"医生{self.doctor_id}的头像"


class MessageLog(models.Model):
    """One interface call, inbound or outbound, as an integration engine's message browser shows it.

    Request and response are stored with personal data masked.
    """

    INBOUND, OUTBOUND = "in", "out"

    class Failure(models.TextChoices):
        """Why a call failed, so that a hospital's own bad input is told apart from a broken interface."""

        NONE = "", "无"
        INPUT = "input", "对方报文有误"  # inbound: the hospital's message was refused (not XML, invalid, not allowed)
        REFUSED = "refused", "医院拒绝"  # outbound: the hospital answered ResultCode≠0 (it works)
        PLATFORM = "platform", "平台故障"  # inbound: the platform could not process a valid message
        HOSPITAL = "hospital", "医院接口故障"  # outbound: timeout, connection, HTTP error, unusable answer

    direction = models.CharField("方向", max_length=3, choices=[(INBOUND, "医院→平台"), (OUTBOUND, "平台→医院")])
    side = models.CharField(
        "接口类别",
        max_length=10,
        choices=[("center", "平台端接口"), ("hospital", "医院端接口"), ("referral", "转诊接口")],
    )
    interface = models.CharField("接口", max_length=50)
    hospital = models.ForeignKey(
        Hospital,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="医院",
        db_index=False,
    )
    hospital_no = models.CharField("医院编号", max_length=36, blank=True)
    transaction_id = models.CharField("访问流水号", max_length=64, blank=True)
    ok = models.BooleanField("成功", default=False)
    result_code = models.CharField("结果代码", max_length=10, blank=True)
    error = models.TextField("错误信息", blank=True)
    # Blank for successes and for rows written before the column existed (counted as failures then).
    failure = models.CharField("失败类别", max_length=10, blank=True, default="", choices=Failure.choices)
    duration_ms = models.PositiveIntegerField("耗时(毫秒)", default=0)
    remote_addr = models.CharField("对方地址", max_length=300, blank=True)
    request_text = models.TextField("请求报文（已脱敏）", blank=True)
    response_text = models.TextField("应答报文（已脱敏）", blank=True)
    created_at = models.DateTimeField("时间", default=timezone.now)

    class Meta:
        verbose_name = "接口报文日志"
        verbose_name_plural = "接口报文日志"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["hospital", "-created_at"], name="msglog_hospital_time"),
            models.Index(fields=["interface", "-created_at"], name="msglog_interface_time"),
            models.Index(fields=["-created_at"], name="msglog_time"),
            models.Index(fields=["transaction_id"], name="msglog_transaction"),
            # The interface-health dashboard reads a time window and groups it by hospital and
            # interface: every column it reads is in the index (an index-only scan on PostgreSQL).
            models.Index(
                fields=["created_at"],
                name="msglog_health",
                include=["hospital", "side", "interface", "direction", "ok", "failure", "duration_ms"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.interface} {self.hospital_no} {self.transaction_id}"


class InboundTransaction(models.Model):
    """The answer to a TransactionId already applied (CONTRACT.md section 5: idempotent repeats).

    The answer is replayed verbatim, and some answers carry patients' names (ReconciliationInfo):
    it is stored encrypted like every other personal-data column.
    """

    hospital = models.ForeignKey(Hospital, on_delete=models.CASCADE, related_name="+", verbose_name="医院")
    transaction_id = models.CharField("访问流水号", max_length=64)
    interface = models.CharField("接口", max_length=50)
    body_hash = models.CharField("报文摘要（SHA-256）", max_length=64)
    response_text = EncryptedTextField("应答报文（加密）", kind="clinical")
    created_at = models.DateTimeField("处理时间", default=timezone.now)

    class Meta:
        verbose_name = "已处理的访问流水号"
        verbose_name_plural = "已处理的访问流水号"
        constraints = [
            models.UniqueConstraint(fields=["hospital", "transaction_id"], name="uniq_transaction_per_hospital")
        ]

    def __str__(self) -> str:
        return f"{self.interface} {self.transaction_id}"


class PersonalDataReveal(models.Model):
    """An audit record: a staff user revealed a full personal-data value (CONTRACT.md section 6)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, verbose_name="用户")
    model = models.CharField("数据类型", max_length=100)
    object_id = models.CharField("记录", max_length=64)
    field = models.CharField("字段", max_length=64)
    # Asked on every reveal (a POST): why this person's full value was needed.
    reason = models.CharField("查看原因", max_length=300, default="", blank=True)
    revealed_at = models.DateTimeField("时间", default=timezone.now)

    class Meta:
        verbose_name = "个人信息查看记录"
        verbose_name_plural = "个人信息查看记录"
        ordering = ["-revealed_at"]
        permissions = [("reveal_personal_data", "可查看完整个人信息")]

    def __str__(self) -> str:
        return f"{self.user} {self.model}#{self.object_id}.{self.field}"


class AuditEntry(models.Model):
    """One recorded change: an admin edit, or a state change of an order, referral or reconciliation."""

    at = models.DateTimeField("时间", default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name="用户"
    )
    actor = models.CharField("操作者", max_length=150, help_text="用户名，或医院编号、渠道代码、系统任务")
    action = models.CharField("动作", max_length=50)
    model = models.CharField("数据类型", max_length=100, db_index=True)
    object_id = models.CharField("记录", max_length=64, db_index=True)
    before = models.JSONField("变更前", default=dict, blank=True)
    after = models.JSONField("变更后", default=dict, blank=True)
    reason = models.CharField("原因", max_length=500, blank=True)

    class Meta:
        verbose_name = "审计记录"
        verbose_name_plural = "审计记录"
        ordering = ["-at"]
        indexes = [models.Index(fields=["model", "object_id", "-at"], name="audit_object_time")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.model}#{self.object_id}"


class ConformanceRun(models.Model):
    """One run of the onboarding conformance check (接入检查) against a hospital's interface,
    requested from the admin and executed by a Celery task; its rows are ConformanceCheck."""

    class Status(models.TextChoices):
        QUEUED = "queued", "排队中"
        RUNNING = "running", "运行中"
        PASSED = "passed", "通过"
        FAILED = "failed", "未通过"
        ERROR = "error", "无法运行"

    hospital = models.ForeignKey(
        Hospital, on_delete=models.CASCADE, related_name="conformance_runs", verbose_name="医院"
    )
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name="发起人"
    )
    work_id = models.CharField("测试排班号", max_length=36, blank=True)
    work_date = models.DateField("测试排班日期", null=True, blank=True)
    endpoint = models.CharField("检查的接口地址", max_length=300, blank=True)
    total = models.PositiveIntegerField("检查项数", default=0)
    passed = models.PositiveIntegerField("通过", default=0)
    failed = models.PositiveIntegerField("失败", default=0)
    skipped = models.PositiveIntegerField("跳过", default=0)
    advice = models.TextField("配置建议", blank=True)
    error = models.TextField("错误信息", blank=True)
    created_at = models.DateTimeField("发起时间", default=timezone.now)
    started_at = models.DateTimeField("开始时间", null=True, blank=True)
    finished_at = models.DateTimeField("完成时间", null=True, blank=True)

    class Meta:
        verbose_name = "接入检查"
        verbose_name_plural = "接入检查"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["hospital", "-created_at"], name="conformance_hospital_time")]
        permissions = [("run_conformance", "可运行医院接入检查")]

    def __str__(self) -> str:
        return f"{self.hospital.hospital_no} 接入检查 {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_pending(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class ConformanceCheck(models.Model):
    """One check (检查项) of a conformance run: an operation called with a valid or an invalid message."""

    class Result(models.TextChoices):
        PASS = "通过", "通过"
        FAIL = "失败", "失败"
        SKIP = "跳过", "跳过"

    run = models.ForeignKey(ConformanceRun, on_delete=models.CASCADE, related_name="checks", verbose_name="接入检查")
    seq = models.PositiveIntegerField("序号")
    operation = models.CharField("接口", max_length=50)
    case = models.CharField("检查项", max_length=100)
    result = models.CharField("结果", max_length=4, choices=Result.choices)
    duration_ms = models.PositiveIntegerField("耗时(毫秒)", default=0)
    note = models.TextField("说明", blank=True)

    class Meta:
        verbose_name = "接入检查项"
        verbose_name_plural = "接入检查项"
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="uniq_conformance_check_seq")]

    def __str__(self) -> str:
        return f"{self.seq}. {self.operation} {self.case}：{self.result}"
