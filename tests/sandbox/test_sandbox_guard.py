"""Issue 14 item 1, over HTTP against the live server: the sandbox hospital hands out no patient data
to just anyone. It is off unless SANDBOX_ENABLED, answers only the platform's credentials (or an
address it trusts) when on, and a wrong name gets nobody's card."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest
import requests
from lxml import etree

from sandbox.models import SandboxCard, SandboxHospital

pytestmark = pytest.mark.django_db(transaction=True)
ID_NO, PHONE, NAME = "3306XXXXXXXXXX0042", "13400000042", "测试患者甲"


def cards_envelope(name: str) -> bytes:
    message = (
        f"<Request><HospitalNo>S001</HospitalNo><UserCardNo>{ID_NO}</UserCardNo><UserName>{name}</UserName>"
        "<UserAddress></UserAddress><UserTel></UserTel><CardType>01</CardType><HealthCardNum></HealthCardNum></Request>"
    )
    return (
        '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
        f'<h:queryCardListInfo xmlns:h="http://regional.health/ws/his"><h:xml>{escape(message)}</h:xml>'
        "</h:queryCardListInfo></e:Body></e:Envelope>"
    ).encode()


def answer(response) -> etree._Element:
    body = etree.fromstring(response.content)
    result = next(e for e in body.iter() if isinstance(e.tag, str) and e.tag.endswith("Result"))
    return etree.fromstring(result.text.encode())


@pytest.fixture
def patient_card(db):
    his = SandboxHospital.objects.create(hospital_no="S001", name="测试沙箱医院")
    return SandboxCard.objects.create(hospital=his, card_no="JZK0000000042", id_code=ID_NO, name=NAME, phone=PHONE)


class SandboxGuardTests:
    def test_off_unless_enabled(self, patient_card, live_server, settings):
        settings.SANDBOX_ENABLED = False
        url = f"{live_server.url}/sandbox/his/S001/ws"
        assert requests.get(url, timeout=10).status_code == 404
        assert requests.post(url, data=cards_envelope("谁都行"), timeout=10).status_code == 404
        assert requests.get(f"{live_server.url}/sandbox/pay/wepay/bill", timeout=10).status_code == 404

    def test_a_caller_from_elsewhere_needs_the_sandbox_secret(self, patient_card, live_server, settings):
        settings.SANDBOX_ALLOWED_NETWORKS = ["10.9.9.0/24"]  # the test's own address is not trusted
        settings.SANDBOX_SECRET = "sandbox-secret-for-the-test-0001"
        url = f"{live_server.url}/sandbox/his/S001/ws"
        for auth in (None, ("sandbox", "wrong"), ("platform", settings.SANDBOX_SECRET)):
            refused = requests.post(url, data=cards_envelope(NAME), auth=auth, timeout=10)
            assert refused.status_code == 401 and PHONE not in refused.text and "JZK" not in refused.text
        ok = requests.post(url, data=cards_envelope(NAME), auth=("sandbox", settings.SANDBOX_SECRET), timeout=10)
        assert answer(ok).findtext("ResultCode") == "0" and "JZK0000000042" in ok.text
        settings.SANDBOX_SECRET = ""  # no secret configured: Basic never opens it
        assert requests.post(url, data=cards_envelope(NAME), auth=("sandbox", ""), timeout=10).status_code == 401

    def test_an_id_number_with_a_wrong_name_gets_nobodys_card(self, patient_card, live_server):
        url = f"{live_server.url}/sandbox/his/S001/ws"
        wrong = requests.post(url, data=cards_envelope("别人"), timeout=10)
        result = answer(wrong)
        assert result.findtext("ResultCode") == "1" and "姓名不一致" in result.findtext("ErrorMsg")
        assert PHONE not in wrong.text and "JZK0000000042" not in wrong.text and NAME not in wrong.text
        right = answer(requests.post(url, data=cards_envelope(NAME), timeout=10))
        assert right.findtext("ResultCode") == "0"
