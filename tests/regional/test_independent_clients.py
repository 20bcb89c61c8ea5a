"""/ws/center called by SOAP clients that nobody here wrote, generated from its WSDL:
PHP's SoapClient (Debian's php-cli + php-soap) and Node's `soap` package."""

from __future__ import annotations

import datetime as dt
import pathlib
import shutil
import subprocess

import pytest
from lxml import etree

from regional import inbound
from regional.messages.catalog import CENTER
from tests.base import SECRET
from tests.services import require_binary

CLIENTS = pathlib.Path(__file__).resolve().parent.parent / "clients"
TOMORROW = (dt.date.today() + dt.timedelta(days=1)).isoformat()


def schedule(work_id: str, doctor: str = "D01") -> str:
    return (
        f"<Record><WorkId>{work_id}</WorkId><DoctorId>{doctor}</DoctorId><DoctorName>测试医生甲</DoctorName>"
        f"<DepartmentId>K01</DepartmentId><DepartmentName>内科</DepartmentName><WorkDate>{TOMORROW}</WorkDate>"
        "<WorkTimeCode>1</WorkTimeCode><WorkStartDate>08:00</WorkStartDate><WorkStopDate>12:00</WorkStopDate>"
        "<RegistrationPrice>12.50</RegistrationPrice><RegistrationNumber>20</RegistrationNumber>"
        "<RegistrationCount>30</RegistrationCount><HosLockedCount>2</HosLockedCount></Record>"
    )


def head(tx: str) -> str:
    return f"<TransactionId>{tx}</TransactionId><HospitalNo>H0001</HospitalNo>"


# Every center-side operation, in an order that makes each call meaningful, with what it must answer.
CALLS = [
    (
        "HospitalInfo",
        lambda t: (
            f"<Request>{head(t)}<HospitalName>测试第一医院</HospitalName><DegreeName>三级甲等</DegreeName></Request>"
        ),
        None,
    ),
    (
        "DepartmentInfo",
        lambda t: (
            f"<Request>{head(t)}<Count>1</Count><DepartmentInfo><Record><DepartmentId>K01</DepartmentId>"
            "<DepartmentName>内科</DepartmentName><IsOutpatient>1</IsOutpatient></Record></DepartmentInfo></Request>"
        ),
        None,
    ),
    (
        "DoctorInfo",
        lambda t: (
            f"<Request>{head(t)}<Count>1</Count><DoctorInfo><Record><DoctorId>D01</DoctorId><DoctorName>测试医生甲</DoctorName>"
            "<DepartmentId>K01</DepartmentId><DepartmentName>内科</DepartmentName><IsZJ>1</IsZJ></Record></DoctorInfo></Request>"
        ),
        None,
    ),
    (
        "synchronizedWorkInfo",
        lambda t: (
            f"<Request>{head(t)}<Count>2</Count><IsMultiTimes>0</IsMultiTimes><WorkInfo>{schedule('W1')}{schedule('W2')}</WorkInfo></Request>"
        ),
        None,
    ),
    (
        "stopWorkNotice",
        lambda t: (
            f"<Request>{head(t)}<WorkInfo><Record><WorkId>W1</WorkId><StopReason>医生外出会诊</StopReason></Record></WorkInfo></Request>"
        ),
        None,
    ),
    (
        "changeWorkNotice",
        lambda t: (
            f"<Request>{head(t)}<WorkInfo><Record><OldWorkId>W2</OldWorkId><ChangeReason>换医生</ChangeReason>"
            f"<NewWorkInfo>{schedule('W3', 'D02')[8:-9]}</NewWorkInfo></Record></WorkInfo></Request>".replace(
                "<HosLockedCount>2</HosLockedCount>", ""
            )
        ),
        None,
    ),
    (
        "getPromiseNotice",
        lambda t: (
            f"<Request>{head(t)}<WorkInfo><Record><WorkFlowId>WF-NOT-KNOWN</WorkFlowId><workType>4</workType>"
            f"<workDate>{TOMORROW} 09:00:00</workDate></Record></WorkInfo></Request>"
        ),
        "WF-NOT-KNOWN",
    ),
    (
        "ReconciliationInfo",
        lambda t: (
            f"<Request><TransactionId>{t}</TransactionId><HosOrgCode>H0001</HosOrgCode><OrderInfo>"
            f"<StartDate>{TOMORROW}</StartDate><EndDate>{TOMORROW}</EndDate></OrderInfo></Request>"
        ),
        None,
    ),
]


def expect(operation: str, answer: str, error_naming: str | None) -> None:
    root = etree.fromstring(answer.encode())
    result = {child.tag: (child.text or "") for child in root}
    if (CENTER, operation) not in inbound.HANDLERS:
        assert result["ResultCode"] == "1" and "未开通" in result["ErrorMsg"], (operation, result)
    elif error_naming:
        assert result["ResultCode"] == "1" and error_naming in result["ErrorMsg"], (operation, result)
    else:
        assert result["ResultCode"] == "0", (operation, result)


@pytest.fixture(scope="module")
def node_ready():
    require_binary("node", "nodejs")
    if not (CLIENTS / "node_modules" / "soap").exists():
        npm = require_binary("npm", "npm")
        subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=CLIENTS, check=True, timeout=300)
    return shutil.which("node")


@pytest.fixture(scope="module")
def php_ready():
    php = require_binary("php", "php-cli")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30).stdout.lower().split()
    if "soap" not in modules:
        require_binary("__php-soap-extension__", "php-soap")
    return php


def run_client(command: list[str], message: str, tmp_path) -> str:
    path = tmp_path / "message.xml"
    path.write_text(message, encoding="utf-8")
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.django_db(transaction=True)
class IndependentClientTests:
    def test_php_soapclient_calls_every_center_operation(self, hospital, public_url, php_ready, tmp_path):
        wsdl = f"{public_url}/ws/center?wsdl"
        for n, (operation, build, error_naming) in enumerate(CALLS):
            answer = run_client(
                [php_ready, str(CLIENTS / "php_client.php"), wsdl, "H0001", SECRET, operation],
                build(f"php-{n}"),
                tmp_path,
            )
            expect(operation, answer, error_naming)

    def test_node_soap_calls_every_center_operation(self, hospital, public_url, node_ready, tmp_path):
        wsdl = f"{public_url}/ws/center?wsdl"
        for n, (operation, build, error_naming) in enumerate(CALLS):
            answer = run_client(
                [node_ready, str(CLIENTS / "node_client.js"), wsdl, "H0001", SECRET, operation],
                build(f"node-{n}"),
                tmp_path,
            )
            expect(operation, answer, error_naming)


def _answer(text: str) -> dict:
    root = etree.fromstring(text.encode())
    out = {child.tag: (child.text or "") for child in root}
    for child in root:
        if len(child):
            out[child.tag] = [{c.tag: (c.text or "") for c in record} for record in child]
    return out


def sandbox_round(call) -> list[str]:
    """Every hospital-side operation of the sandbox, in an order where each one has something to act on."""
    from sandbox.models import SandboxSchedule

    schedule = SandboxSchedule.objects.filter(hospital__hospital_no="S0001", work_date__gt=dt.date.today()).first()
    work = f"<HospitalNo>S0001</HospitalNo><WorkId>{schedule.work_id}</WorkId>"
    patient = "<Name>测试患者</Name><TelephoneNo>13400000001</TelephoneNo><IDCode>3306XXXXXXXXXX0001</IDCode>"
    done = []
    cards = _answer(
        call(
            "queryCardListInfo",
            "<Request><HospitalNo>S0001</HospitalNo><UserCardNo>3306XXXXXXXXXX0001</UserCardNo>"
            "<UserName>测试患者</UserName><CardType>01</CardType></Request>",
        )
    )
    assert cards["ResultCode"] == "0" and cards["cardList"][0]["CardNo"], cards
    card = cards["cardList"][0]["CardNo"]
    checked = _answer(
        call(
            "CheckMediCardIdService",
            f"<Request><HospitalNo>S0001</HospitalNo><MediCardId>{card}</MediCardId>"
            "<MediCardType>01</MediCardType><UserCardNo>3306XXXXXXXXXX0001</UserCardNo><UserName>测试患者</UserName></Request>",
        )
    )
    assert checked["ResultCode"] == "0" and checked["IsValid"] == "true", checked
    info = _answer(
        call(
            "getRegistrationInfo",
            f"<Request><TransactionId>i1</TransactionId>{work}"
            f"<WorkDate>{schedule.work_date.isoformat()}</WorkDate></Request>",
        )
    )
    assert info["ResultCode"] == "0" and info["WorkInfo"][0]["RegistrationNumber"] == str(schedule.remaining), info
    slots = _answer(call("GetDaypartingDetailInfo", f"<Request>{work}</Request>"))
    assert slots["ResultCode"] == "0" and slots["NumberList"][0]["Status"] == "1", slots
    lineup = _answer(call("GetLineupDetailInfo", f"<Request>{work}</Request>"))
    assert lineup["ResultCode"] == "0" and lineup["WaitList"], lineup
    locked = _answer(
        call("confirmRegistration", f"<Request><TransactionId>l1</TransactionId>{work}{patient}</Request>")
    )
    assert locked["ResultCode"] == "0" and locked["WorkFlowId"], locked
    wf = f"<HospitalNo>S0001</HospitalNo><WorkFlowId>{locked['WorkFlowId']}</WorkFlowId>"
    paid = _answer(
        call(
            "PaymentNotice",
            f"<Request><TransactionId>p1</TransactionId>{wf}<PayType>4</PayType>"
            f"<PayAmount>{locked['Fee']}</PayAmount></Request>",
        )
    )
    assert paid["ResultCode"] == "0", paid
    detail = _answer(call("GetOrderDetailInfo", f"<Request>{wf}</Request>"))
    assert detail["ResultCode"] == "0" and detail["WorkFlowStatus"] == "2", detail
    cancelled = _answer(
        call("getPromiseNotice", f"<Request><TransactionId>c1</TransactionId>{wf}<desc>患者取消</desc></Request>")
    )
    assert cancelled["ResultCode"] == "0", cancelled
    second = _answer(
        call("confirmRegistration", f"<Request><TransactionId>l2</TransactionId>{work}{patient}</Request>")
    )
    unlocked = _answer(
        call(
            "UnlockReg",
            f"<Request><TransactionId>u1</TransactionId><HospitalNo>S0001</HospitalNo>"
            f"<WorkFlowId>{second['WorkFlowId']}</WorkFlowId></Request>",
        )
    )
    assert unlocked["ResultCode"] == "0", unlocked
    refused = _answer(
        call("UnlockReg", "<Request><TransactionId>u2</TransactionId><HospitalNo>S0001</HospitalNo></Request>")
    )
    assert refused["ResultCode"] != "0" and "WorkFlowId" in refused["ErrorMsg"], refused
    done += ["queryCardListInfo", "CheckMediCardIdService", "getRegistrationInfo", "GetDaypartingDetailInfo",
             "GetLineupDetailInfo", "confirmRegistration", "PaymentNotice", "GetOrderDetailInfo", "getPromiseNotice", "UnlockReg"]  # fmt: skip
    return done


@pytest.fixture
def sandbox_hospital(db):
    from sandbox.demo import hospital_build

    return hospital_build(hospital_no="S0001", name="测试沙箱医院", level=2, days=2, slots=5)


@pytest.mark.django_db(transaction=True)
class SandboxIndependentClientTests:
    def test_php_soapclient_calls_every_hospital_side_operation_of_the_sandbox(
        self, sandbox_hospital, public_url, php_ready, tmp_path
    ):
        wsdl = f"{public_url}/sandbox/his/S0001/ws?wsdl"

        def call(operation, message):
            return run_client([php_ready, str(CLIENTS / "php_client.php"), wsdl, "", "", operation], message, tmp_path)

        assert len(set(sandbox_round(call))) == 10

    def test_node_soap_calls_every_hospital_side_operation_of_the_sandbox(
        self, sandbox_hospital, public_url, node_ready, tmp_path
    ):
        wsdl = f"{public_url}/sandbox/his/S0001/ws?wsdl"

        def call(operation, message):
            return run_client([node_ready, str(CLIENTS / "node_client.js"), wsdl, "", "", operation], message, tmp_path)

        assert len(set(sandbox_round(call))) == 10
