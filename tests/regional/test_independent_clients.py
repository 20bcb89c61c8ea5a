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
from tests.conftest import SECRET
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
