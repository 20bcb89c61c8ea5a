"""What a channel developer reads at /api/docs/: the description, every error code, the order life
cycle, a curl quick-start, and real examples. Put into the OpenAPI document by `postprocess`
(drf-spectacular's POSTPROCESSING_HOOKS), so the document served is the only reference needed.
"""

from __future__ import annotations

# Every `code` a channel can receive, with its HTTP status and meaning. tests/booking/test_api_docs.py
# checks that each error class of booking/errors.py, regional/errors.py and the API's own handler is here.
ERROR_CODES: tuple[tuple[str, int, str], ...] = (
    ("invalid_request", 400, "请求参数有误；`errors` 按字段列出每一处问题"),
    ("invalid", 400, "请求有误，`message` 说明原因"),
    ("parse_error", 400, "请求体不是有效的 JSON"),
    ("invalid_cursor", 400, "分页游标 `cursor` 无效（请使用上一页应答中的 `next`/`previous` 原样请求）"),
    ("not_authenticated", 401, "未提供渠道令牌（`Authorization: Token <令牌>`）"),
    ("authentication_failed", 401, "渠道令牌无效或已停用"),
    ("permission_denied", 403, "该令牌无权访问此接口"),
    ("forbidden", 403, "无权操作该数据"),
    ("not_found", 404, "资源不存在"),
    ("schedule_not_found", 404, "排班不存在"),
    ("order_not_found", 404, "订单不存在（或不是本渠道的订单）"),
    ("waitlist_entry_not_found", 404, "候补记录不存在"),
    ("method_not_allowed", 405, "不支持该 HTTP 方法"),
    ("not_acceptable", 406, "无法按 Accept 头给出应答（应答均为 JSON）"),
    ("payload_too_large", 413, "请求体过大（JSON 请求体上限见 REST_MAX_BODY_BYTES，默认64 KB）"),
    ("unsupported_media_type", 415, "请求体应为 `application/json`"),
    ("conflict", 409, "请求与当前数据冲突"),
    ("schedule_full", 409, "号源已满（可加入候补）"),
    ("schedule_closed", 409, "排班已停诊、已换诊、已撤销或已结束，不能预约"),
    ("duplicate_booking", 409, "该患者已预约该排班"),
    ("lock_refused", 409, "医院拒绝锁号，`message` 为医院给出的原因"),
    ("order_state", 409, "订单当前状态不允许该操作（如支付已超时的锁号、退已就诊的号）"),
    ("lock_expired", 409, "锁号已超时（默认15分钟）未支付，号源已释放"),
    ("payment_mismatch", 409, "支付金额与挂号费不一致"),
    ("idempotency_conflict", 409, "同一个 Idempotency-Key 用于了不同的请求"),
    ("booking_not_open", 409, "尚未到放号时间"),
    ("booking_closed", 409, "已过预约截止时间"),
    ("patient_limit", 409, "患者在全区域的日/周/月预约次数已达上限"),
    ("session_overlap", 409, "患者在相同时段已有预约（任意医院）"),
    ("region_rule", 409, "全区域预约规则不允许本次预约（因患者经其他渠道的预约；不透露细节）"),
    ("cancel_deadline", 409, "已过退号截止时间"),
    ("patient_banned", 409, "患者因多次爽约被限制预约"),
    ("waitlist_closed", 409, "该排班未开放候补（预约规则未设置“候补截止（开诊前分钟数）”）或候补已截止"),
    ("waitlist_not_needed", 409, "排班仍有号源，请直接预约"),
    ("channel_quota", 409, "本渠道在该排班的号源份额已用完"),
    ("hospital_refused", 409, "医院拒绝了请求，`message` 为医院给出的原因"),
    ("rate_limited", 429, "请求过于频繁；按 `Retry-After` 头的秒数后重试"),
    ("internal_error", 500, "平台内部错误；`message` 含参考号，可凭参考号联系平台"),
    ("not_open", 501, "该接口尚未开通"),
    ("hospital_bad_answer", 502, "医院应答无法识别；平台会核实结果，请稍后查询订单"),
    ("hospital_error", 502, "调用医院接口失败"),
    ("hospital_unavailable", 503, "医院暂时无法访问（超时、连接失败或熔断中）；稍后重试"),
)

# The order life cycle: status → (label, how it is reached, what can follow).
ORDER_STATES: tuple[tuple[str, str, str, str], ...] = (
    ("locking", "锁号中", "`POST /api/v1/orders/` 已受理，平台正在向医院锁号", "`1`、`failed`"),
    ("1", "已预约", "医院锁号成功；在线支付须在 `lock_expires_at`（默认15分钟）前支付", "`2`、`3`、`expired`"),
    ("2", "已支付", "`POST …/pay/` 成功，平台已通知医院", "`3`（退号并原路退款）、`4`、`6`"),
    ("3", "已退号", "渠道退号（`POST …/cancel/`）、医院退号或停诊", "—（终态）"),
    ("4", "已履约", "医院报告患者已就诊", "—（终态）"),
    ("6", "已爽约", "医院报告患者未就诊（计入爽约记录）", "—（终态）"),
    ("failed", "锁号失败", "医院拒绝锁号或锁号未成功，号源已释放；`failure_reason` 为原因", "—（终态）"),
    ("expired", "超时未支付", "锁号后未在锁号时间内支付，平台已向医院解除锁定", "—（终态）"),
)


def _table(header: tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


QUICK_START = """\
```sh
BASE=https://平台地址      # 例如 http://127.0.0.1:8000
TOKEN=渠道令牌              # manage.py channel_token JKMZWX 生成
AUTH="Authorization: Token $TOKEN"

# 1. 找一个有号的排班
curl -s -H "$AUTH" "$BASE/api/v1/schedules/?hospital=H330600&date=2026-12-02"

# 2. 预约（锁号）。Idempotency-Key 使重试安全：同一个键重复提交返回同一订单（200，头 Idempotent-Replayed: true）
curl -s -X POST -H "$AUTH" -H "Content-Type: application/json" -H "Idempotency-Key: 7c1f0b6e-demo-0001" \\
  -d '{"hospital_no":"H330600","work_id":"W20261202001","patient":{"name":"测试患者",
       "id_card":"11010519491231002X","phone":"13400001234"}}' "$BASE/api/v1/orders/"
# → 201 {"order_no":"R20261201…","status":"1","fee":"12.50","lock_expires_at":"…",…}

# 3. 支付：金额须等于 fee，须在 lock_expires_at 之前
curl -s -X POST -H "$AUTH" -H "Content-Type: application/json" \\
  -d '{"pay_type":"4","amount":"12.50","pay_trade_no":"4200001234202612010001","pay_channel":"wepay"}' \\
  "$BASE/api/v1/orders/R20261201…/pay/"

# 4. 退号（已支付的订单原路退款）
curl -s -X POST -H "$AUTH" -H "Content-Type: application/json" -d '{"reason":"行程有变"}' \\
  "$BASE/api/v1/orders/R20261201…/cancel/"
```"""

DESCRIPTION = f"""\
预约挂号渠道（微信 `JKMZWX`、APP `JKMYAPP`）使用的 REST 接口。只读本文档即可完成对接。

## 认证
每个渠道一个令牌，放在每个请求的头中：`Authorization: Token <令牌>`。令牌由平台工作人员用
`manage.py channel_token <渠道代码>` 签发。

## 快速开始：预约、支付、退号
{QUICK_START}

## 规则
- **锁号时间**：预约成功（状态 `1`）后须在 `lock_expires_at` 前支付，默认 15 分钟；超时平台向医院解除
  锁定，订单变为 `expired`，号源释放。
- **幂等**：`POST /api/v1/orders/` 可带 `Idempotency-Key` 头。首次创建答 **201**；同一个键、同样的请求
  再次提交答 **200**，返回同一订单，并带头 `Idempotent-Replayed: true`；同一个键、不同的请求答 409
  `idempotency_conflict`。
- **候补**：排班号源已满时可加入候补（`POST /api/v1/schedules/{{id}}/waitlist/`）。只有设置了候补规则——预约规则中的
  “候补截止（开诊前分钟数）”——的医院的排班才开放候补（区域管理员在管理后台“预约挂号 › 预约规则”中为全区域或某家医院设置，
  医院的规则留空时沿用全区域的），否则答 409 `waitlist_closed`，`message` 说明缺少哪条规则；仍有号源时答 409 `waitlist_not_needed`。
  有号源释放时平台按顺位为候补患者锁号（候补状态 `offered`，订单状态 `1`），患者须在锁号时间内支付。
- **身份证号**：18 位（末位可为 X）或 15 位旧号码，按 GB 11643 校验：18 位号码核对校验码，两种号码都核对出生
  日期；`3306XXXXXXXXXXXX` 这类占位号码不被接受。不合格时答 400 `invalid_request`，`errors` 中
  `patient.id_card`（查询诊疗卡、验证诊疗卡、按身份证号查订单时为 `id_card`）说明原因（格式不正确 / 校验码不正确 /
  出生日期不正确），不回显号码。
- **金额**：字符串形式的十进制数，两位小数（如 `"12.50"`），单位元。
- **时间**：ISO 8601，带时区（北京时间 `+08:00`）。

## 分页
所有列表都用游标分页：应答为 `{{"next": …, "previous": …, "results": [...]}}`，`next`/`previous` 是完整的
URL（没有更多时为 `null`），原样请求即可翻页；`page_size` 可选（默认 50，最大 200）。游标无效时答 400
`invalid_cursor`。

## 订单状态
{_table(("status", "含义", "何时进入", "之后可能变为"), ORDER_STATES)}

订单另有 `mark`：`stopped`（医院停诊，已退号并退款）、`changed`（医院换诊，订单已随新排班）、`refused`
（已支付，但医院拒绝了支付通知，`mark_reason` 为医院的原因；患者会收到通知，平台工作人员处理，必要时原路退款）。

锁号时医院无应答（超时等）答 503 `hospital_unavailable`，`message` 说明“锁号结果未知”：本次预约未成功，该号源
在平台向医院核实之前不会再次放出。

## 错误
所有错误的应答体都是 JSON：`{{"code": "稳定的错误代码", "message": "中文说明", "errors": {{"字段": ["问题"]}}}}`
（`errors` 仅参数错误时出现）。按 `code` 编程，`message` 可直接展示给用户。

{_table(("code", "HTTP 状态", "含义"), ERROR_CODES)}
"""

# Real examples for the components channels read most.
EXAMPLES: dict[str, dict] = {
    "OrderOut": {
        "order_no": "R20261201093015A1B2C3",
        "status": "1",
        "status_label": "已预约",
        "mark": "",
        "mark_label": "",
        "mark_reason": "",
        "hospital_no": "H330600",
        "hospital_name": "某某人民医院",
        "work_id": "W20261202001",
        "work_date": "2026-12-02",
        "department_name": "心血管内科",
        "doctor_name": "张三丰",
        "num_source_id": "",
        "workflow_id": "HIS00001234",
        "serial_number": 12,
        "worktime": "08:00-08:30",
        "fee": "12.50",
        "lock_expires_at": "2026-12-01T09:45:15+08:00",
        "pay_type": "",
        "pay_trade_no": "",
        "pay_channel": "",
        "paid_at": None,
        "cancelled_by": "",
        "cancelled_at": None,
        "refund_amount": None,
        "failure_reason": "",
        "created_at": "2026-12-01T09:30:15+08:00",
        "patient": {
            "name": "测试患者",
            "id_card": "11010519491231002X",
            "phone": "13400001234",
            "card_no": "",
            "card_type": "",
            "sex": "1",
            "age": "36",
            "address": "",
        },
    },
    "OrderIn": {
        "hospital_no": "H330600",
        "work_id": "W20261202001",
        "num_source_id": "",
        "patient": {"name": "测试患者", "id_card": "11010519491231002X", "phone": "13400001234"},
    },
    "PayIn": {"pay_type": "4", "amount": "12.50", "pay_trade_no": "4200001234202612010001", "pay_channel": "wepay"},
    "CancelIn": {"reason": "行程有变"},
    "ScheduleOut": {
        "id": 1024,
        "work_id": "W20261202001",
        "hospital_no": "H330600",
        "department_id": "K0101",
        "department_name": "心血管内科",
        "doctor_id": "D0001",
        "doctor_name": "张三丰",
        "work_date": "2026-12-02",
        "time_code": 1,
        "time_label": "上午",
        "start_time": "08:00:00",
        "stop_time": "11:30:00",
        "registration_type_name": "专家门诊",
        "price": "12.50",
        "remaining": 18,
        "total": 20,
        "status": "normal",
        "status_label": "正常",
        "stop_reason": "",
    },
    "ErrorOut": {"code": "schedule_full", "message": "排班W20261202001号源已满，可加入候补"},
}


EXAMPLES["OrderDetailOut"] = {
    **EXAMPLES["OrderOut"],
    "transitions": [
        {"from_status": "locking", "to_status": "1", "mark": "", "actor": "医院 H330600", "reason": "医院锁号成功",
         "created_at": "2026-12-01T09:30:16+08:00"},
    ],
}  # fmt: skip
EXAMPLES["PatientIn"] = EXAMPLES["OrderIn"]["patient"]
EXAMPLES["WaitlistIn"] = {"patient": EXAMPLES["OrderIn"]["patient"]}
EXAMPLES["WaitlistOut"] = {
    "id": 88,
    "schedule_id": 1024,
    "status": "waiting",
    "status_label": "候补中",
    "position": 1,
    "order_no": None,
    "lock_expires_at": None,
    "note": "",
    "created_at": "2026-12-01T09:31:02+08:00",
}
EXAMPLES["HospitalOut"] = {
    "hospital_no": "H330600",
    "name": "某某人民医院",
    "short_name": "某某医院",
    "level": 3,
    "degree_name": "三级甲等",
    "address": "某某市某某路1号",
    "phone": "0575-00000000",
}
EXAMPLES["DepartmentOut"] = {
    "department_id": "K0101",
    "name": "心血管内科",
    "name_abbr": "XXGNK",
    "parent_department_id": "K01",
    "location": "门诊楼三楼",
    "is_outpatient": True,
}

SUCCESS = {200: "成功（幂等重放的预约也是200，并带头 Idempotent-Replayed: true）", 201: "已创建"}

# Page links as they really look (DRF's own example points at api.example.org/accounts).
PAGE_LINKS = {
    "next": "https://平台地址/api/v1/schedules/?cursor=cD0yMDI2LTEyLTAy&page_size=50",
    "previous": "https://平台地址/api/v1/schedules/?cursor=cj0xJnA9MjAyNi0xMi0wMg%3D%3D&page_size=50",
}


def postprocess(result: dict, generator, request, public) -> dict:
    """drf-spectacular hook: the description above, examples, and named error responses."""
    result.setdefault("info", {})["description"] = DESCRIPTION
    schemas = result.get("components", {}).get("schemas", {})
    for name, example in EXAMPLES.items():
        if name in schemas:
            schemas[name]["example"] = example
    for name, schema in schemas.items():
        if name.startswith("Paginated"):
            for link, example in PAGE_LINKS.items():
                if link in schema.get("properties", {}):
                    schema["properties"][link]["example"] = example
    meanings: dict[int, list[str]] = {}
    for code, status, _meaning in ERROR_CODES:
        meanings.setdefault(status, []).append(f"`{code}`")
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for status, response in (operation.get("responses") or {}).items():
                if response.get("description") or not status.isdigit():
                    continue
                if int(status) >= 400:
                    codes = "、".join(meanings.get(int(status), [])) or "见“错误”一节"
                    response["description"] = f"错误（code：{codes}）"
                else:
                    response["description"] = SUCCESS.get(int(status), "成功")
    return result
