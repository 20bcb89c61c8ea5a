"""The onboarding conformance check of one hospital's hospital-side interface (3.1–3.8, 6.1–6.2).

Every operation is called at the hospital's configured endpoint through the platform's own client
(regional.hospital_client), with valid messages (a whole lock → unlock → lock → pay → cancel
round on a session the hospital names for testing) and invalid ones (a required element left
empty, unknown ids, text that is not XML), which must be refused with ResultCode ≠ 0 and an
ErrorMsg, never a SOAP fault or an HTTP error. The test patient is fictitious.

Run from `manage.py check_hospital` (a table on the terminal) and from the admin's button
(regional.services.conformance_request, stored as ConformanceRun rows).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from regional import hospital_client
from regional.errors import DomainError
from regional.hospital_client import HospitalError, HospitalRefused
from regional.messages import catalog
from regional.models import ConformanceCheck, ConformanceRun, Hospital
from regional.pii import mask

logger = logging.getLogger("regional.conformance")

PASS, FAIL, SKIP = "通过", "失败", "跳过"


# The fictitious patient of every check (overridable on the command line).
DEFAULT_PATIENT = {"Name": "测试患者一", "IDCode": "3306XXXXXXXXXX0001", "TelephoneNo": "13400000001"}


def fictitious_patient(*, name: str, id_code: str, phone: str) -> dict:
    return {
        "Name": name,
        "Sex": "9",
        "SexName": "未说明的性别",
        "Age": "30",
        "TelephoneNo": phone,
        "Address": "接入检查测试地址",
        "IDCode": id_code,
    }


class CheckFailed(Exception):
    pass


class Skipped(Exception):
    pass


@dataclass
class Row:
    operation: str
    case: str
    result: str
    note: str
    ms: int


class Conformance:
    """The sequence of checks against one hospital; each check is one row of the report."""

    def __init__(
        self,
        hospital: Hospital,
        *,
        work_id: str | None,
        work_date: dt.date | None,
        patient: dict,
        timeout: float | None,
        on_row: Callable[[Row], None] | None = None,
    ):
        self.hospital = hospital
        self.work_id = work_id
        self.work_date = work_date
        self.patient = patient
        self.timeout = timeout
        self.rows: list[Row] = []
        self.card_no: str | None = None
        self.free_source: str | None = None
        self.remaining: int | None = None
        self.advice: list[str] = []
        self.on_row = on_row

    # -- plumbing

    def check(self, operation: str, case: str, fn: Callable[[], str | None]) -> None:
        # Each row describes the hospital, not the platform's circuit breaker: a misconfigured
        # hospital fails every call, and after five the breaker would answer 熔断中 for the rest.
        hospital_client.circuit_for(self.hospital).reset()
        started = time.monotonic()
        try:
            note = fn() or ""
            result = PASS
        except Skipped as exc:
            result, note = SKIP, str(exc)
        except CheckFailed as exc:
            result, note = FAIL, str(exc)
        except HospitalError as exc:
            result, note = FAIL, f"{type(exc).__name__}：{exc.message}"
            advice = configuration_advice(exc.message, self.hospital)
            if advice and advice not in self.advice:
                self.advice.append(advice)
        row = Row(operation, case, result, note, int((time.monotonic() - started) * 1000))
        self.rows.append(row)
        if self.on_row is not None:
            self.on_row(row)

    def call(self, name: str, data: dict) -> dict:
        return hospital_client.call(self.hospital, name, data, timeout=self.timeout)

    def need_session(self) -> None:
        if not self.work_id or not self.work_date:
            raise Skipped("未指定测试排班（--work-id 和 --work-date）")

    def expect_refusal(self, name: str, text: str) -> str:
        try:
            hospital_client.send_raw(self.hospital, name, text, timeout=self.timeout)
        except HospitalRefused as exc:
            if not exc.error_msg:
                raise CheckFailed("已拒绝，但ErrorMsg为空（应说明原因）") from exc
            return f"已拒绝：{exc.error_msg[:60]}"
        raise CheckFailed("非法报文被当作成功处理（ResultCode=0），应返回ResultCode≠0和ErrorMsg")

    def invalid(self, name: str, data: dict, blank: str) -> str:
        """The message of `name` with element `blank` left empty, as text."""
        iface = catalog.interface(catalog.HOSPITAL, name)
        payload = {"TransactionId": uuid.uuid4().hex, "HospitalNo": self.hospital.hospital_no, **data, blank: ""}
        return iface.request.render(payload, version=self.hospital.interface_version or None)

    # -- the checks

    def run(self) -> list[Row]:
        self.valid_cards()
        self.valid_session_queries()
        self.valid_booking_round()
        self.invalid_messages()
        return self.rows

    def valid_cards(self) -> None:
        def query_cards() -> str:
            answer = self.call(
                "queryCardListInfo",
                {
                    "UserCardNo": self.patient["IDCode"],
                    "UserName": self.patient["Name"],
                    "UserTel": self.patient["TelephoneNo"],
                    "CardType": "01",
                },
            )
            cards = answer["cardList"]
            if not cards:
                raise CheckFailed("cardList为空：未建档的患者应自动建卡并返回卡号")
            self.card_no = cards[0]["CardNo"]
            return f"{len(cards)}张卡，{mask(self.card_no, 'card')}"

        def check_card() -> str:
            if not self.card_no:
                raise Skipped("没有可验证的卡号")
            answer = self.call(
                "CheckMediCardIdService",
                {
                    "MediCardId": self.card_no,
                    "MediCardType": "01",
                    "UserCardNo": self.patient["IDCode"],
                    "UserName": self.patient["Name"],
                },
            )
            if answer.get("IsValid") is not True:
                raise CheckFailed(f"刚建的卡应有效，IsValid为{answer.get('IsValid')}")
            return "卡有效（IsValid为是）"

        def check_unknown_card() -> str:
            data = {
                "MediCardId": "NOCARD" + uuid.uuid4().hex[:8].upper(),
                "MediCardType": "01",
                "UserCardNo": self.patient["IDCode"],
                "UserName": self.patient["Name"],
            }
            try:
                answer = self.call("CheckMediCardIdService", data)
            except HospitalRefused as exc:
                return f"已拒绝：{exc.error_msg[:60]}"
            if answer.get("IsValid") is True:
                raise CheckFailed("不存在的卡被判定为有效")
            return "判定为无效卡"

        self.check("queryCardListInfo", "查询/自动建档", query_cards)
        self.check("CheckMediCardIdService", "验证有效卡", check_card)
        self.check("CheckMediCardIdService", "验证不存在的卡", check_unknown_card)

    def registration_info(self) -> dict:
        answer = self.call("getRegistrationInfo", {"WorkId": self.work_id, "WorkDate": self.work_date})
        records = answer["WorkInfo"]
        if not records:
            raise CheckFailed("WorkInfo为空")
        return records[0]

    def expect_remaining(self, delta: int) -> str:
        self.need_session()
        if self.remaining is None:
            raise Skipped("没有初始号源数可比较")
        now = self.registration_info()["RegistrationNumber"]
        if now != self.remaining + delta:
            raise CheckFailed(f"剩余号源应为{self.remaining + delta}，实际为{now}")
        return f"剩余{now}"

    def valid_session_queries(self) -> None:
        def registration() -> str:
            self.need_session()
            record = self.registration_info()
            self.remaining = record["RegistrationNumber"]
            if self.remaining < 2:
                raise CheckFailed(f"测试排班剩余号源为{self.remaining}，至少需要2个")
            return f"剩余{self.remaining}，挂号费{record['Price']}"

        def dayparting() -> str:
            self.need_session()
            try:
                answer = self.call("GetDaypartingDetailInfo", {"WorkId": self.work_id})
            except HospitalRefused as exc:
                return f"医院未开放分时段（可选接口）：{exc.error_msg[:40]}"
            slots = answer["NumberList"]
            free = [slot for slot in slots if slot["Status"] == "1"]
            self.free_source = free[0]["numSourceId"] if free else None
            return f"{len(slots)}个时段，{len(free)}个可挂"

        def lineup() -> str:
            self.need_session()
            answer = self.call("GetLineupDetailInfo", {"WorkId": self.work_id})
            if not answer["WaitList"]:
                raise CheckFailed("WaitList为空")
            record = answer["WaitList"][0]
            return f"当前序号{record['NowSeq']}，候诊{record['WaitPers']}人"

        self.check("getRegistrationInfo", "查询号源数", registration)
        self.check("GetDaypartingDetailInfo", "查询分时段", dayparting)
        self.check("GetLineupDetailInfo", "查询排队", lineup)

    def lock(self, use_source: bool) -> dict:
        self.need_session()
        if self.remaining is None:
            raise Skipped("号源数查询未通过")
        data = {"WorkId": self.work_id, "PatientNo": self.card_no, "CardType": "01" if self.card_no else None}
        data.update(self.patient)
        if use_source and self.free_source:
            data["numSourceId"] = self.free_source
        answer = self.call("confirmRegistration", data)
        if not answer.get("WorkFlowId"):
            raise CheckFailed("没有返回WorkFlowId")
        return answer

    def order_status(self, work_flow_id: str | None, expected: str) -> str:
        if not work_flow_id:
            raise Skipped("没有挂号单")
        answer = self.call("GetOrderDetailInfo", {"WorkFlowId": work_flow_id})
        if answer["WorkFlowStatus"] != expected:
            raise CheckFailed(f"订单状态应为{expected}，实际为{answer['WorkFlowStatus']}")
        if answer["WorkId"] != self.work_id:
            raise CheckFailed(f"WorkId应为{self.work_id}，实际为{answer['WorkId']}")
        return f"WorkFlowStatus={expected}"

    def valid_booking_round(self) -> None:
        state: dict = {}

        def first_lock() -> str:
            answer = self.lock(use_source=True)
            state["first"] = answer
            return f"WorkFlowId {answer['WorkFlowId']}，序号{answer.get('SerialNumber')}"

        def unlock() -> str:
            first = state.get("first") or {}
            if not first:
                raise Skipped("锁号未通过")
            self.call("UnlockReg", {"WorkFlowId": first["WorkFlowId"], "SerialNumber": first.get("SerialNumber")})
            return "已解锁"

        def second_lock() -> str:
            answer = self.lock(use_source=False)
            state["second"] = answer
            return f"WorkFlowId {answer['WorkFlowId']}，挂号费{answer['Fee']}"

        def pay(repeat: bool) -> Callable[[], str]:
            def run() -> str:
                second = state.get("second") or {}
                if not second:
                    raise Skipped("锁号未通过")
                data = {
                    "WorkFlowId": second["WorkFlowId"],
                    "SerialNumber": second.get("SerialNumber"),
                    "PayType": "4",
                    "PayAmount": second["Fee"],
                    "payTradeNo": state.setdefault("trade", "CHK" + uuid.uuid4().hex[:20].upper()),
                    "payChannel": "wepay",
                }
                answer = self.call("PaymentNotice", data)
                return f"序号{answer['SerialNumber']}，时段{answer['Worktime']}" + (
                    "（重复通知仍成功）" if repeat else ""
                )

            return run

        def cancel(repeat: bool) -> Callable[[], str]:
            def run() -> str:
                second = state.get("second") or {}
                if not second:
                    raise Skipped("锁号未通过")
                when = dt.datetime.now().replace(microsecond=0)
                data = {"WorkFlowId": second["WorkFlowId"], "workDate": when, "desc": "接入检查退号"}
                if not repeat:
                    self.call("getPromiseNotice", data)
                    return "已退号"
                # The specification does not say a second 退号 succeeds: an answer either way is fine.
                try:
                    self.call("getPromiseNotice", data)
                except HospitalRefused as exc:
                    return f"医院拒绝重复退号（规范未要求幂等）：{exc.error_msg[:40]}"
                return "重复通知仍成功"

            return run

        first_id = lambda: (state.get("first") or {}).get("WorkFlowId")  # noqa: E731
        second_id = lambda: (state.get("second") or {}).get("WorkFlowId")  # noqa: E731
        self.check("confirmRegistration", "锁号（分时段号源）", first_lock)
        self.check("getRegistrationInfo", "锁号后号源减少1", lambda: self.expect_remaining(-1))
        self.check("GetOrderDetailInfo", "锁号后订单状态为已预约", lambda: self.order_status(first_id(), "1"))
        self.check("UnlockReg", "解除锁定", unlock)
        self.check("getRegistrationInfo", "解锁后号源恢复", lambda: self.expect_remaining(0))
        self.check("confirmRegistration", "再次锁号", second_lock)
        self.check("PaymentNotice", "支付通知", pay(repeat=False))
        self.check("PaymentNotice", "重复支付通知（幂等）", pay(repeat=True))
        self.check("GetOrderDetailInfo", "支付后订单状态为已支付", lambda: self.order_status(second_id(), "2"))
        self.check("getPromiseNotice", "退号通知", cancel(repeat=False))
        self.check("getPromiseNotice", "重复退号通知（成功或拒绝均可）", cancel(repeat=True))
        self.check("GetOrderDetailInfo", "退号后订单状态为已退号", lambda: self.order_status(second_id(), "3"))
        self.check("getRegistrationInfo", "退号后号源恢复", lambda: self.expect_remaining(0))

    def invalid_messages(self) -> None:
        work_id = self.work_id or "NO-SUCH-WORK"
        date = self.work_date or dt.date.today()
        unknown = "NOSUCH" + uuid.uuid4().hex[:12].upper()
        patient = dict(self.patient)
        cases = [
            ("confirmRegistration", "缺少必填项WorkId", {"WorkId": work_id, **patient}, "WorkId"),
            ("UnlockReg", "缺少必填项WorkFlowId", {"WorkFlowId": unknown}, "WorkFlowId"),
            ("PaymentNotice", "缺少必填项WorkFlowId", {"WorkFlowId": unknown, "PayType": "4", "PayAmount": "1.00"},
             "WorkFlowId"),
            ("getRegistrationInfo", "缺少必填项WorkDate", {"WorkId": work_id, "WorkDate": date}, "WorkDate"),
            ("getPromiseNotice", "缺少必填项WorkFlowId", {"WorkFlowId": unknown}, "WorkFlowId"),
            ("GetOrderDetailInfo", "缺少必填项WorkFlowId", {"WorkFlowId": unknown}, "WorkFlowId"),
            ("GetLineupDetailInfo", "缺少必填项WorkId", {"WorkId": work_id}, "WorkId"),
            ("GetDaypartingDetailInfo", "缺少必填项WorkId", {"WorkId": work_id}, "WorkId"),
            ("CheckMediCardIdService", "缺少必填项MediCardId",
             {"MediCardId": "X", "MediCardType": "01", "UserCardNo": patient["IDCode"], "UserName": patient["Name"]},
             "MediCardId"),
            ("queryCardListInfo", "缺少必填项UserCardNo", {"UserCardNo": patient["IDCode"], "CardType": "01"},
             "UserCardNo"),
        ]  # fmt: skip
        for name, case, data, blank in cases:
            self.check(name, case, lambda name=name, data=data, blank=blank: self.expect_refusal(
                name, self.invalid(name, data, blank)))  # fmt: skip

        def unknown_id(name: str, data: dict) -> Callable[[], str]:
            def run() -> str:
                try:
                    self.call(name, data)
                except HospitalRefused as exc:
                    return f"已拒绝：{exc.error_msg[:60]}"
                raise CheckFailed("不存在的记录被当作成功处理")

            return run

        self.check(
            "confirmRegistration", "不存在的排班", unknown_id("confirmRegistration", {"WorkId": unknown, **patient})
        )
        self.check("UnlockReg", "不存在的挂号单", unknown_id("UnlockReg", {"WorkFlowId": unknown}))
        self.check(
            "PaymentNotice",
            "不存在的挂号单",
            unknown_id("PaymentNotice", {"WorkFlowId": unknown, "PayType": "4", "PayAmount": "1.00"}),
        )
        self.check("getPromiseNotice", "不存在的挂号单", unknown_id("getPromiseNotice", {"WorkFlowId": unknown}))
        self.check("GetOrderDetailInfo", "不存在的挂号单", unknown_id("GetOrderDetailInfo", {"WorkFlowId": unknown}))
        self.check(
            "getRegistrationInfo",
            "不是XML的报文",
            lambda: self.expect_refusal("getRegistrationInfo", "<Request><WorkId>未闭合的报文"),
        )


_UNQUALIFIED_EXPECTED = re.compile(r"Expected elements are <\{\}([\w.\-]+)>")
_QUALIFIED_EXPECTED = re.compile(r"Expected elements are <\{([^}]+)\}([\w.\-]+)>")


def configuration_advice(message: str, hospital: Hospital) -> str:
    """The interface setting a hospital's fault points at, in Chinese; empty when it points at none."""
    unqualified = _UNQUALIFIED_EXPECTED.search(message)
    if unqualified:
        part = unqualified.group(1)
        fix = "“参数元素形式”设为“不带命名空间（unqualified）”"
        if part != hospital.soap_part_name:
            fix += f"，参数名设为{part}"
        return (
            f"医院（JAX-WS/CXF）期望不带命名空间的参数元素<{part}>：请在管理后台 医院→报文格式 中将{fix}"
            f"（或 manage.py hospital_credentials {hospital.hospital_no} --part-form unqualified --part {part}）"
        )
    qualified = _QUALIFIED_EXPECTED.search(message)
    if qualified:
        namespace, part = qualified.groups()
        return (
            f"医院期望参数元素<{{{namespace}}}{part}>：请将命名空间设为{namespace}、参数名设为{part}、"
            "“参数元素形式”设为“带命名空间（qualified）”"
        )
    if "SOAPAction" in message:
        return (
            "医院不认可平台发送的SOAPAction：请在管理后台 医院→报文格式 中调整“SOAPAction”（.NET asmx 通常为“命名空间+操作名”，"
            f"manage.py hospital_credentials {hospital.hospital_no} --soap-action namespace）"
        )
    if "application/soap+xml" in message or "HTTP 415" in message:
        return "医院只接受SOAP 1.2：请将“SOAP版本”设为1.2（--soap-version 1.2）"
    return ""


# -- stored runs (the admin's button) ---------------------------------------------------------


def conformance_request(
    *, hospital: Hospital, user=None, work_id: str = "", work_date: dt.date | None = None
) -> ConformanceRun:
    """Queue a conformance run of `hospital`; the task starts after the commit that stores it."""
    from regional.tasks import run_conformance

    if not hospital.endpoint_url and not hospital.wsdl_url:
        raise DomainError(f"医院{hospital.hospital_no}未配置医院端接口地址或WSDL地址，无法检查")
    if bool(work_id) != bool(work_date):
        raise DomainError("测试排班号和出诊日期须同时填写（或都不填，只检查查询和非法报文）")
    with transaction.atomic():
        run = ConformanceRun.objects.create(
            hospital=hospital,
            requested_by=user,
            work_id=work_id,
            work_date=work_date,
            endpoint=(hospital.wsdl_url or hospital.endpoint_url)[:300],
        )
        transaction.on_commit(lambda: run_conformance.delay(run.pk))
    return run


def conformance_execute(*, run_id: int) -> ConformanceRun | None:
    """Run a queued conformance run, storing each check as it completes (the page shows progress).

    Idempotent: only the caller that moves the run from queued to running executes it, so a task
    delivered twice runs the checks once. Never inside a transaction (it calls the hospital)."""
    # Conditional UPDATE: of two workers handed the same run, exactly one claims it.
    claimed = ConformanceRun.objects.filter(pk=run_id, status=ConformanceRun.Status.QUEUED).update(
        status=ConformanceRun.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    run = ConformanceRun.objects.select_related("hospital").get(pk=run_id)
    hospital = run.hospital
    seq = 0

    def store(row: Row) -> None:
        nonlocal seq
        seq += 1
        ConformanceCheck.objects.create(
            run=run, seq=seq, operation=row.operation, case=row.case[:100], result=row.result,
            duration_ms=row.ms, note=row.note,
        )  # fmt: skip

    conformance = Conformance(
        hospital,
        work_id=run.work_id or None,
        work_date=run.work_date,
        patient=fictitious_patient(
            name=DEFAULT_PATIENT["Name"], id_code=DEFAULT_PATIENT["IDCode"], phone=DEFAULT_PATIENT["TelephoneNo"]
        ),
        timeout=None,
        on_row=store,
    )
    hospital_client.circuit_for(hospital).reset()
    try:
        rows = conformance.run()
    except Exception as exc:  # noqa: BLE001 - a broken run is reported on its page, not lost in a worker log
        logger.exception("conformance run %s failed", run_id)
        run.status = ConformanceRun.Status.ERROR
        run.error = f"检查中断：{type(exc).__name__}"
        rows = conformance.rows
    else:
        failed = any(row.result == FAIL for row in rows)
        run.status = ConformanceRun.Status.FAILED if failed else ConformanceRun.Status.PASSED
    finally:
        # The check's own failures must not hold back the hospital's real traffic.
        hospital_client.circuit_for(hospital).reset()
    run.total = len(rows)
    run.passed = sum(row.result == PASS for row in rows)
    run.failed = sum(row.result == FAIL for row in rows)
    run.skipped = sum(row.result == SKIP for row in rows)
    run.advice = "\n".join(conformance.advice)
    run.finished_at = timezone.now()
    with transaction.atomic():
        run.save(update_fields=["status", "error", "total", "passed", "failed", "skipped", "advice", "finished_at"])
    return run
