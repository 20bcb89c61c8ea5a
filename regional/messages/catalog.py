"""Every message of the specification's four documents, described once.

Section numbers are the specification's: 2.x and 5.x are served by the center (`/ws/center`),
3.x and 6.x by hospitals (and by the sandbox hospital), the referral messages by
`/referral/api/SxzzAppServlet`. Lengths are the specification's 长度（字节）: counted in characters when
read, in bytes of the receiver's encoding when the platform sends (schema.py). tests/regional/
test_spec_tables.py compares names, required marks and lengths with the specification's tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from regional.messages import codes
from regional.messages.schema import (
    AMOUNT,
    BLOB,
    BOOL,
    DATE,
    DATETIME,
    ENUM,
    INT,
    TIME,
    Field,
    Group,
    Message,
    RecordList,
    Violation,
)

CENTER = "center"
HOSPITAL = "hospital"
REFERRAL = "referral"


def transaction_id(required: bool = True) -> Field:
    return Field("TransactionId", "访问流水号", required=required, max_length=36)


def hospital_no(length: int = 20, required: bool = True) -> Field:
    return Field("HospitalNo", "医院编号", required=required, max_length=length)


RESULT_CODE = Field("ResultCode", "交易结果", INT, required=True, note="0：成功 1：错误")
ERROR_MSG = Field("ErrorMsg", "对错误/异常的详细描述信息", max_length=256, fit=True)


def _record_count(list_name: str, required: bool):
    """`Count` must equal the records sent (CONTRACT.md section 5)."""

    def check(data: dict) -> list[Violation]:
        count = data.get("Count")
        sent = len(data.get(list_name) or [])
        if count is None:
            return []
        if count != sent:
            return [Violation("Count", f"为{count}，与实际发送的{sent}条Record不一致")]
        return []

    return check


def _schedule_fields(dept_id_len: int = 36, with_doctor_profile: bool = False, with_hos_locked: bool = True):
    fields: list = [
        Field("WorkId", "排班班次", required=True, max_length=100),
        Field("WorkAddr", "执业地址", max_length=100),
        Field("DoctorId", "医生编号", required=True, max_length=36),
        Field("DoctorName", "医生姓名", required=True, max_length=20),
    ]
    if with_doctor_profile:
        fields += [
            Field("DoctorNameAbbr", "医生姓名简写", max_length=200),
            Field("DoctorDesc", "医生详细介绍", max_length=300),
            Field("DoctorDegreeCode", "医生职称编号", max_length=20),
            Field("DoctorDegreeName", "医生职称", max_length=40),
        ]
    fields += [
        Field("DepartmentId", "医生所属科室编号", required=True, max_length=dept_id_len),
        Field("DepartmentName", "科室名称", required=True, max_length=200),
    ]
    if with_doctor_profile:
        fields += [
            Field("DepartmentNameAbbr", "科室名称拼音简写", max_length=100),
            Field("DoctorSkill", "医生特长", max_length=300),
        ]
    fields += [
        Field("WorkDate", "出诊日期", DATE, required=True, max_length=20),
        Field("WorkTimeCode", "出诊时段", ENUM, required=True, max_length=20, choices=codes.WorkTimeCode),
        Field("WorkStartDate", "具体开始时间", TIME, required=True, max_length=8),
        Field("WorkStopDate", "具体结束时间", TIME, required=True, max_length=8),
        Field("RegistrationTypeId", "挂号类型编号", max_length=20),
        Field("RegistrationTypeName", "挂号类型名称", max_length=100),
        Field("RegistrationPrice", "挂号价格（元）", AMOUNT, required=True, max_length=20),
        Field("RegistrationNumber", "剩余号源数", INT, required=True),
        Field("RegistrationCount", "号源总数", INT, required=True),
    ]
    if with_hos_locked:
        fields.append(Field("HosLockedCount", "医院保留号源数", INT))
    return tuple(fields)


def _reconciliation_query(data: dict) -> list[Violation]:
    info = data.get("OrderInfo") or {}
    if info.get("Batch"):
        return []
    start, end = info.get("StartDate"), info.get("EndDate")
    if not start or not end:
        return [Violation("OrderInfo", "应填写Batch（交易流水号），或同时填写StartDate和EndDate")]
    if end < start:
        return [Violation("OrderInfo/EndDate", "不能早于StartDate")]
    return []


def _apply_bespeak(data: dict) -> list[Violation]:
    if data.get("mzzycxbz") == "MZ" and not data.get("bespeak"):
        return [Violation("bespeak", "门诊（MZ）转诊时为必填项（门诊挂号数据）")]
    return []


@dataclass(frozen=True)
class Interface:
    """One operation of the specification: who serves it, its two messages and its hospital element."""

    name: str
    side: str
    section: str
    title: str
    request: Message
    response: Message
    # The request element naming the calling hospital (checked against the authenticated caller).
    hospital_field: str | None = "HospitalNo"

    @property
    def key(self) -> tuple[str, str]:
        return (self.side, self.name)


def _response(*fields) -> Message:
    return Message("Response", (RESULT_CODE, ERROR_MSG, *fields))


# -- center side: 2.x (appointment pool) and 5.x (public) ---------------------------------------

SYNCHRONIZED_WORK_INFO = Interface(
    "synchronizedWorkInfo",
    CENTER,
    "2.1",
    "医院排班信息",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            Field("Count", "发出的排班信息总数", INT),  # 是否必填 left empty in the specification
            Field("IsMultiTimes", "是否清空旧的排班记录", kind=ENUM, required=True, max_length=1, choices=codes.YesNo),
            RecordList("WorkInfo", "排班列表", _schedule_fields(), required=True),
        ),
        checks=(_record_count("WorkInfo", True),),
    ),
    _response(Field("Count", "收到排班总数", INT, required=True), hospital_no()),
)

STOP_WORK_NOTICE = Interface(
    "stopWorkNotice",
    CENTER,
    "2.2",
    "停诊通知",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            RecordList(
                "WorkInfo",
                "停诊通知列表",
                (
                    Field("WorkId", "排班号", required=True, max_length=100),
                    Field("StopReason", "停诊原因", required=True, max_length=500),
                ),
                required=True,
            ),
        ),
    ),
    _response(hospital_no()),
)

CHANGE_WORK_NOTICE = Interface(
    "changeWorkNotice",
    CENTER,
    "2.3",
    "换诊通知",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            RecordList(
                "WorkInfo",
                "换诊列表",
                (
                    Field("OldWorkId", "原排班号", required=True, max_length=100),
                    Field("ChangeReason", "换诊原因", required=True, max_length=500),
                    Group(
                        "NewWorkInfo",
                        "新排班信息",
                        _schedule_fields(dept_id_len=20, with_doctor_profile=True, with_hos_locked=False),
                        required=True,
                    ),
                ),
                required=True,
            ),
        ),
    ),
    _response(),
)

PROMISE_NOTICE_CENTER = Interface(
    "getPromiseNotice",
    CENTER,
    "2.4",
    "履约/爽约/退号通知",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            RecordList(
                "WorkInfo",
                "履约爽约列表",
                (
                    Field("WorkFlowId", "挂号交易流水号", required=True, max_length=36),
                    Field("workType", "履约状态", ENUM, required=True, max_length=1, choices=codes.PromiseType),
                    Field("workDate", "触发时间", DATETIME, required=True, max_length=20),
                    Field("desc", "原因/描述", max_length=300),
                ),
                required=True,
            ),
        ),
    ),
    _response(hospital_no(), Field("WorkFlowId", "挂号交易流水号", required=True, max_length=4000)),
)

RECONCILIATION_INFO = Interface(
    "ReconciliationInfo",
    CENTER,
    "2.5",
    "财务对账",
    Message(
        "Request",
        (
            transaction_id(),
            Field("HosOrgCode", "医院代码", required=True, max_length=90),
            Group(
                "OrderInfo",
                "查询条件",
                (
                    Field("Batch", "交易流水号（多个用逗号隔开）", max_length=5000),
                    Field("StartDate", "开始时间", DATE, max_length=30),
                    Field("EndDate", "结束时间", DATE, max_length=30),
                ),
                required=True,
            ),
        ),
        checks=(_reconciliation_query,),
    ),
    Message(
        "Response",
        (
            RESULT_CODE,
            ERROR_MSG,
            RecordList(
                "List",
                "订单明细信息列表",
                (
                    Field("Batch", "交易流水号", required=True, max_length=100),
                    Field("PayTradeNo", "支付交易号", required=True, max_length=32),
                    Field("Type", "类型", ENUM, required=True, max_length=1, choices=codes.LedgerType),
                    Field("HosOrgName", "医院名称", required=True, max_length=70),
                    Field("AddTime", "交易时间", DATETIME, required=True, max_length=20),
                    Field("PatientName", "患者姓名", required=True, max_length=50, sensitive="name"),
                    Field("PayAmount", "支付金额", AMOUNT, required=True, max_length=10),
                    Field("RefundAmount", "退款金额", AMOUNT, required=True, max_length=10),
                    Field("Total", "订单总额", AMOUNT, required=True, max_length=10),
                ),
                item="Result",
            ),
        ),
    ),
    hospital_field="HosOrgCode",
)

HOSPITAL_INFO = Interface(
    "HospitalInfo",
    CENTER,
    "5.1",
    "机构信息",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            Field("HospitalName", "机构名称", required=True, max_length=100),
            Field("HospitalShortName", "机构简称", max_length=100),
            Field("DegreeCode", "级别编码", max_length=20),
            Field("DegreeName", "级别名称", max_length=20),
            Field("Phone", "电话", max_length=20),
            Field("Addr", "地址", max_length=100),
            Field("Desc", "机构简介", max_length=600),
            Field("Image", "图片", BLOB, max_length=4 * 1024 * 1024),
            Field("Website", "医院网址", max_length=30),
            Field("BusRoute", "公交路线", max_length=300),
            Field("SeqNo", "排序字段", INT),
            Field("IsDelete", "是否删除", BOOL, max_length=10),
        ),
    ),
    _response(hospital_no()),
)

DEPARTMENT_INFO = Interface(
    "DepartmentInfo",
    CENTER,
    "5.2",
    "科室信息",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            Field("Count", "发出的科室信息总数", INT),
            RecordList(
                "DepartmentInfo",
                "科室列表",
                (
                    Field("DepartmentId", "医院科室编号", required=True, max_length=36),
                    Field("DepartmentName", "科室名称", required=True, max_length=200),
                    Field("DepartmentNameAbbr", "科室名称拼音简写", max_length=100),
                    Field("DepartmentIdGB", "标准科室编码（一级）", max_length=20),
                    Field("DepartmentNameGB", "标准科室名称", max_length=200),
                    Field("ProfessionalIdGB", "标准科室编码（二级）专科", max_length=20),
                    Field("ProfessionalNameGB", "专科名称", max_length=20),
                    Field("ProfessionalNameAbbr", "专科名称拼音简写", max_length=100),
                    Field("Desc", "科室描述", max_length=400),
                    Field("ParentDepartmentId", "上级科室编码", max_length=36),
                    Field("IsHospitalization", "是否住院科室（默认0）", ENUM, max_length=1, choices=codes.YesNo),
                    Field("IsOutpatient", "是否门诊科室（默认0）", ENUM, max_length=1, choices=codes.YesNo),
                    Field("OutpatientType", "门诊类型", ENUM, max_length=1, choices=codes.OutpatientType),
                    Field("DepartAddr", "科室位置", max_length=200),
                    Field("IsDelete", "是否删除", BOOL, max_length=10),
                    Field("SeqNo", "排序字段", INT),
                ),
                required=True,
            ),
        ),
        checks=(_record_count("DepartmentInfo", False),),
    ),
    _response(Field("Count", "收到科室信息总数", INT, required=True), hospital_no()),
)

DOCTOR_INFO = Interface(
    "DoctorInfo",
    CENTER,
    "5.3",
    "医生信息",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            Field("Count", "发出的医生信息总数", INT),
            RecordList(
                "DoctorInfo",
                "医生信息列表",
                (
                    Field("DoctorId", "医生编号（工号）", required=True, max_length=36),
                    Field("DoctorName", "医生姓名", required=True, max_length=20),
                    Field("DoctorNameAbbr", "医生姓名简写", max_length=200),
                    Field("DoctorSexCode", "医生性别编码", ENUM, max_length=20, choices=codes.SexCode),
                    Field("DoctorSexName", "医生性别名称", max_length=20),
                    Field("DoctorEducationCode", "医生学历编码", max_length=20),
                    Field("DoctorEducationName", "医生学历", max_length=20),
                    Field("DoctorPositionCode", "医生职务编码", max_length=20),
                    Field("DoctorPositionName", "医生职务", max_length=20),
                    Field("DoctorYear", "医生从医年份", max_length=20),
                    Field("DoctorSkill", "医生特长", max_length=300),
                    Field("DoctorDesc", "医生详细介绍", max_length=500),
                    Field("DoctorDegreeCode", "医生职称编码", max_length=20),
                    Field("DoctorDegreeName", "医生职称", max_length=100),
                    Field("DepartmentId", "医院科室编号", required=True, max_length=36),
                    Field("DepartmentName", "科室名称", required=True, max_length=200),
                    Field("IsZJ", "专家标示", ENUM, required=True, max_length=1, choices=codes.YesNo),
                    Field("Icon", "头像", BLOB, max_length=2 * 1024 * 1024),
                    Field("IsDelete", "是否删除", BOOL, max_length=10),
                    Field("SeqNo", "排序字段", INT),
                ),
                required=True,
            ),
        ),
        checks=(_record_count("DoctorInfo", False),),
    ),
    _response(Field("Count", "收到医生信息总数", INT), hospital_no()),
)

# -- hospital side: 3.x (appointment pool) and 6.x (public) -------------------------------------

CONFIRM_REGISTRATION = Interface(
    "confirmRegistration",
    HOSPITAL,
    "3.1",
    "号源锁定",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(36),
            Field("PatientNo", "医疗卡号", max_length=20, sensitive="card"),
            Field("CardType", "卡类型", ENUM, max_length=20, choices=codes.CardType, choices_since=(("02", "2.3"),)),
            Field("Name", "姓名", required=True, max_length=200, sensitive="name"),
            Field("Sex", "性别编码", ENUM, max_length=1, choices=codes.SexCode),
            Field("SexName", "性别", max_length=20),
            Field("Age", "年龄", max_length=30),
            Field("TelephoneNo", "手机号码", required=True, max_length=20, sensitive="phone"),
            Field("Address", "地址", max_length=200, sensitive="address"),
            Field("IDCode", "身份证号", required=True, max_length=30, sensitive="id"),
            Field("WorkId", "班次号", required=True, max_length=100),
            Field("numSourceId", "号源ID", max_length=100),
            Field("channel", "预约渠道", ENUM, max_length=10, choices=codes.ChannelCode, since="2.4"),
        ),
    ),
    _response(
        Field("WorkFlowId", "交易流水号", required=True, max_length=36),
        hospital_no(36, required=False),
        Field("WorkId", "班次号", required=True, max_length=100),
        Field("SerialNumber", "挂号序号", INT),
        Field("Worktime", "就诊时段", max_length=20),
        Field("Fee", "医生挂号费用", AMOUNT, required=True, max_length=20),
    ),
)

UNLOCK_REG = Interface(
    "UnlockReg",
    HOSPITAL,
    "3.2",
    "解除锁定",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(36),
            Field("WorkFlowId", "挂号交易流水号", required=True, max_length=36),
            Field("SerialNumber", "挂号序号", max_length=36),
        ),
    ),
    _response(Field("WorkFlowId", "挂号交易流水号", required=True)),
)

PAYMENT_NOTICE = Interface(
    "PaymentNotice",
    HOSPITAL,
    "3.3",
    "支付通知",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(36),
            Field("WorkFlowId", "挂号交易流水号", required=True, max_length=36),
            Field("SerialNumber", "挂号序号", max_length=36),
            Field("PayType", "支付类型", ENUM, required=True, max_length=1, choices=codes.PayType),
            Field("PayAmount", "支付金额", AMOUNT, required=True, max_length=20),
            Field("payTradeNo", "支付流水号", max_length=40, since="2.1"),
            Field("payChannel", "支付渠道", ENUM, max_length=10, choices=codes.PayChannel, since="2.1"),
            Field("channel", "发起渠道", ENUM, max_length=10, choices=codes.ChannelCode, since="2.4"),
        ),
    ),
    _response(
        Field("WorkFlowId", "挂号交易流水号", required=True),
        # Required in the table, but ResultCode 0 already says the payment was applied: an answer
        # without them is a success, not a reason to send the notice again (the lock gave them).
        Field("SerialNumber", "挂号序号", INT),
        Field("Worktime", "就诊时段", max_length=20),
    ),
)

GET_REGISTRATION_INFO = Interface(
    "getRegistrationInfo",
    HOSPITAL,
    "3.4",
    "号源数查询",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(),
            Field("WorkId", "排班班次", required=True, max_length=100),
            Field("WorkAddr", "执业地址", max_length=100),
            Field("DoctorId", "医生编号", max_length=36),
            Field("DoctorName", "医生姓名", max_length=20),
            Field("DepartmentId", "医院科室编号", max_length=36),
            Field("DepartmentName", "科室名称", max_length=200),
            Field("ProfessionalId", "标准科室ID", max_length=36),
            Field("ProfessionalName", "标准科室名称", max_length=200),
            Field("WorkDate", "出诊日期", DATE, required=True, max_length=20),
            Field("WorkTimeCode", "出诊时段", ENUM, max_length=2, choices=codes.WorkTimeCode),
            Field("WorkStartDate", "具体开始时间", TIME, max_length=8),
            Field("WorkStopDate", "具体结束时间", TIME, max_length=8),
            Field("RegistrationTypeId", "挂号类型编号", max_length=20),
            Field("RegistrationTypeName", "挂号类型名称", max_length=100),
        ),
    ),
    _response(
        RecordList(
            "WorkInfo",
            "号源列表",
            (
                transaction_id(),
                hospital_no(),
                Field("WorkId", "排班班次", required=True, max_length=100),
                Field("RegistrationNumber", "剩余号签数", INT, required=True),
                Field("Price", "挂号金额", AMOUNT, required=True, max_length=20),
            ),
        ),
    ),
)

PROMISE_NOTICE_HOSPITAL = Interface(
    "getPromiseNotice",
    HOSPITAL,
    "3.5",
    "退号通知",
    Message(
        "Request",
        (
            transaction_id(),
            hospital_no(36),
            Field("WorkFlowId", "挂号交易流水号", required=True, max_length=36),
            Field("workDate", "触发时间", DATETIME, max_length=20),
            Field("desc", "原因/描述", max_length=300, fit=True),
        ),
    ),
    _response(Field("WorkFlowId", "挂号交易流水号", required=True, max_length=36)),
)

GET_ORDER_DETAIL_INFO = Interface(
    "GetOrderDetailInfo",
    HOSPITAL,
    "3.6",
    "预约单详情查询",
    Message("Request", (hospital_no(36), Field("WorkFlowId", "挂号交易流水号", required=True, max_length=36))),
    _response(
        Field("WorkFlowId", "挂号交易流水号", required=True, max_length=36),
        transaction_id(required=False),
        Field("SerialNumber", "挂号序号", INT),
        Field("WorkFlowStatus", "订单状态", ENUM, required=True, max_length=1, choices=codes.WorkFlowStatus),
        Field("WorkId", "班次号", required=True, max_length=100),
        Field("Worktime", "就诊时段", max_length=20),
        Field("Fee", "医生挂号费用", AMOUNT, required=True, max_length=20),
        Field("PatientNo", "医疗卡号", max_length=20, sensitive="card"),
        Field("Name", "姓名", required=True, max_length=200, sensitive="name"),
        Field("Sex", "性别编码", ENUM, max_length=1, choices=codes.SexCode),
        Field("SexName", "性别", max_length=20),
        Field("Age", "年龄", max_length=30),
        Field("TelephoneNo", "手机号码", max_length=20, sensitive="phone"),
        Field("Address", "地址", max_length=200, sensitive="address"),
        Field("IDCode", "身份证号", required=True, max_length=30, sensitive="id"),
    ),
)

GET_LINEUP_DETAIL_INFO = Interface(
    "GetLineupDetailInfo",
    HOSPITAL,
    "3.7",
    "查询排队详细信息",
    Message("Request", (hospital_no(36), Field("WorkId", "班次号", required=True, max_length=100))),
    _response(
        RecordList(
            "WaitList",
            "排队列表",
            (
                Field("RegNum", "当前已就诊数量", INT, required=True),
                Field("RegRemainNum", "当前剩余号源", INT, required=True),
                Field("WaitPers", "当前等待就诊人数", INT, required=True),
                Field("NowSeq", "当前看病序号", required=True, max_length=20),
                Field("HasRegNum", "已挂号人数", INT),
                Field("NotReportNum", "未报到人数", INT),
                Field("ReportWaitNum", "报到后等待人数", INT),
            ),
        ),
    ),
)

GET_DAYPARTING_DETAIL_INFO = Interface(
    "GetDaypartingDetailInfo",
    HOSPITAL,
    "3.8",
    "获取分时段信息",
    Message("Request", (hospital_no(36), Field("WorkId", "班次号", required=True, max_length=100))),
    _response(
        RecordList(
            "NumberList",
            "时段列表",
            (
                Field("StartDate", "开始时间", required=True, max_length=36),
                Field("EndDate", "结束时间", required=True, max_length=36),
                Field("CurNum", "序号", INT, required=True),
                Field("SeeDate", "就诊时间", required=True, max_length=36),
                Field("Status", "状态", ENUM, required=True, max_length=1, choices=codes.SlotStatus),
                Field("numSourceId", "号源ID", required=True, max_length=100),
            ),
        ),
    ),
)

CHECK_MEDI_CARD = Interface(
    "CheckMediCardIdService",
    HOSPITAL,
    "6.1",
    "诊疗卡验证",
    Message(
        "Request",
        (
            hospital_no(36),
            Field("MediCardId", "诊疗卡号", required=True, max_length=100, sensitive="card"),
            # 居民健康卡 came with V2.3 of the booking document (V2.1 of the public one, the same day).
            Field(
                "MediCardType",
                "就诊卡类型",
                ENUM,
                required=True,
                max_length=10,
                choices=codes.CardType,
                choices_since=(("02", "2.3"),),
            ),
            Field("UserCardNo", "身份证", required=True, max_length=100, sensitive="id"),
            Field("UserName", "用户姓名", required=True, max_length=100, sensitive="name"),
        ),
    ),
    Message(
        "Response",
        (
            Field("ResultCode", "响应编号（0成功，非0失败）", INT, required=True),
            Field("ErrorMsg", "异常信息", max_length=200),
            Field("IsValid", "是否有效", BOOL, max_length=10),
            Field("UserCardNo", "身份证", max_length=30, sensitive="id"),
            Field("UserName", "用户姓名", max_length=100, sensitive="name"),
            Field("UserPhone", "用户电话", max_length=30, sensitive="phone"),
        ),
    ),
)

QUERY_CARD_LIST = Interface(
    "queryCardListInfo",
    HOSPITAL,
    "6.2",
    "诊疗卡列表查询",
    Message(
        "Request",
        (
            hospital_no(36),
            Field("UserCardNo", "身份证", required=True, max_length=100, sensitive="id"),
            Field("UserName", "姓名", max_length=20, sensitive="name"),
            Field("UserAddress", "用户住址", max_length=200, sensitive="address"),
            Field("UserTel", "联系方式", max_length=20, sensitive="phone"),
            Field(
                "CardType",
                "卡类型",
                ENUM,
                required=True,
                max_length=2,
                choices=(("01", "身份证"), ("02", "健康卡")),
                choices_since=(("02", "2.3"),),
            ),
            Field("HealthCardNum", "健康卡银行卡号", max_length=20, sensitive="card"),
        ),
    ),
    _response(
        RecordList(
            "cardList",
            "诊疗卡列表",
            (
                Field("CardNo", "就诊卡编号", required=True, max_length=100, sensitive="card"),
                Field("Name", "姓名", max_length=100, sensitive="name"),
                # String 100: Java prints timestamps as "2026-12-01 19:33:09.0".
                Field("CreateTime", "建卡时间", max_length=100),
                Field("LastTime", "最后使用时间", max_length=100),
                Field("phone", "电话", max_length=100, sensitive="phone"),
            ),
        ),
    ),
)

# -- two-way referral (lines 1-760) --------------------------------------------------------------


def _referral_origin(order_label: str = "发起转诊编码") -> tuple:
    return (
        Field("orderid", order_label, required=True, max_length=64),
        Field("fqyydm", "发起医院代码", required=True, max_length=22),
        Field("fqyymc", "发起医院名称", required=True, max_length=128),
        Field("fqksdm", "发起科室代码", required=True, max_length=32),
        Field("fqksmc", "发起科室名称", required=True, max_length=128),
        Field("fqysgh", "发起医生工号", required=True, max_length=32),
        Field("fqysxm", "发起医生姓名", required=True, max_length=128),
    )


def _referral_patient() -> tuple:
    return (
        Field("token", "发起访问码", max_length=64),
        Field("brlx", "病人类型", ENUM, max_length=22, choices=codes.PatientType),
        Field("hzxm", "患者姓名", required=True, max_length=64, sensitive="name"),
        Field("jzkh", "就诊卡号", required=True, max_length=64, sensitive="card"),
        Field("jzklx", "就诊卡类型", ENUM, required=True, max_length=22, choices=codes.ReferralCardType),
        Field("sfzh", "身份证号码", required=True, max_length=32, sensitive="id"),
        Field("csrq", "出生日期", DATE, required=True, max_length=32),
        Field("lxdh", "联系电话", required=True, max_length=32, sensitive="phone"),
        Field("jtdz", "家庭地址", max_length=128, sensitive="address"),
        Field("cbzd", "初步诊断", required=True, max_length=128, sensitive="clinical"),
        Field("bszy", "病史摘要", max_length=4000, sensitive="clinical"),
        Field("zyjws", "主要既往史", max_length=4000, sensitive="clinical"),
        Field("zlqk", "治疗情况", max_length=4000, sensitive="clinical"),
        Field("zzmd", "转诊目的", max_length=4000),
        Field("jjcd", "紧急程度", ENUM, max_length=22, choices=codes.Urgency),
    )


REFERRAL_START = Interface(
    "referral",
    REFERRAL,
    "3.1.3.1",
    "医院或his系统发起转诊申请",
    Message(
        "referral",
        (
            *_referral_origin(),
            *_referral_patient(),
            Field("mzzycxbz", "门诊住院标志", ENUM, required=True, max_length=22, choices=codes.CareType),
        ),
    ),
    Message(
        "referral",
        (
            Field("parm", "转诊URL参数", max_length=64, sensitive="id"),  # a link code that opens personal data
            Field("result", "交易结果", required=True, max_length=256),
            Field("message", "错误消息", max_length=256),
        ),
    ),
    hospital_field="fqyydm",
)

REFERRAL_QUERY = Interface(
    "referral-query",
    REFERRAL,
    "3.1.3.2",
    "医院或his系统发起转诊单查询",
    Message(
        "referral-query",
        (
            Field("yydm", "医院编码", required=True, max_length=22),
            Field("ysgh", "医生工号", required=True, max_length=32),
            Field("hzxm", "患者姓名", required=True, max_length=64, sensitive="name"),
            Field("jzkh", "患者卡号", required=True, max_length=64, sensitive="card"),
            Field("jzklx", "患者卡类型", ENUM, required=True, max_length=22, choices=codes.ReferralCardType),
            Field("sfzh", "患者身份证号", required=True, max_length=32, sensitive="id"),
            Field("token", "访问码", max_length=64),
        ),
    ),
    Message(
        "referral-query",
        (
            Field("result", "交易结果", required=True, max_length=256),
            Field("message", "错误消息", max_length=256),
            Field("parm", "转诊URL参数", max_length=64, sensitive="id"),  # a link code that opens personal data
        ),
    ),
    hospital_field="yydm",
)

REFERRAL_APPLY = Interface(
    "referral-apply",
    REFERRAL,
    "3.1.3.3",
    "第三方转诊数据主动推送",
    Message(
        "referral-apply",
        (
            *_referral_origin(),
            Field("zryydm", "转入医院代码", required=True, max_length=128),
            Field("zrksdm", "转入科室代码", max_length=128),
            *_referral_patient(),
            Field("mzzycxbz", "门诊住院标识", ENUM, required=True, max_length=22, choices=codes.CARE_TYPES_UPPER),
            Group(
                "bespeak",
                "门诊数据",
                (
                    Field("ghdh", "挂号单号", required=True, max_length=128),
                    Field("rsid", "号源id", required=True, max_length=128),
                    Field("status", "预约状态", required=True, max_length=128),
                    Field("yyrq", "预约日期", DATE, required=True, max_length=128),
                    Field("ksdm", "预约科室代码", required=True, max_length=128),
                    Field("ksmc", "预约科室名称", required=True, max_length=128),
                    Field("ysgh", "医生工号", required=True, max_length=128),
                    Field("ysxm", "医生姓名", required=True, max_length=128),
                    Field("kssj", "开始时间", TIME, max_length=128),
                    Field("jssj", "结束时间", TIME, max_length=128),
                ),
            ),
        ),
        checks=(_apply_bespeak,),
    ),
    Message(
        "referral-apply",
        (
            Field("result", "结果", required=True, max_length=64),
            Field("message", "错误消息", max_length=256),
        ),
    ),
    hospital_field="fqyydm",
)


ALL_INTERFACES: tuple[Interface, ...] = (
    SYNCHRONIZED_WORK_INFO,
    STOP_WORK_NOTICE,
    CHANGE_WORK_NOTICE,
    PROMISE_NOTICE_CENTER,
    RECONCILIATION_INFO,
    HOSPITAL_INFO,
    DEPARTMENT_INFO,
    DOCTOR_INFO,
    CONFIRM_REGISTRATION,
    UNLOCK_REG,
    PAYMENT_NOTICE,
    GET_REGISTRATION_INFO,
    PROMISE_NOTICE_HOSPITAL,
    GET_ORDER_DETAIL_INFO,
    GET_LINEUP_DETAIL_INFO,
    GET_DAYPARTING_DETAIL_INFO,
    CHECK_MEDI_CARD,
    QUERY_CARD_LIST,
    REFERRAL_START,
    REFERRAL_QUERY,
    REFERRAL_APPLY,
)

BY_KEY: dict[tuple[str, str], Interface] = {i.key: i for i in ALL_INTERFACES}
CENTER_INTERFACES = tuple(i for i in ALL_INTERFACES if i.side == CENTER)
HOSPITAL_INTERFACES = tuple(i for i in ALL_INTERFACES if i.side == HOSPITAL)
REFERRAL_INTERFACES = tuple(i for i in ALL_INTERFACES if i.side == REFERRAL)


def interface(side: str, name: str) -> Interface:
    return BY_KEY[(side, name)]
