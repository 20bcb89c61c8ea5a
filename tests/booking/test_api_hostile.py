"""Issue 14 item 7: malformed input at the REST API, sent over HTTP to the live server with a
channel token. Each gets a 4xx JSON error in the API's `{"code", "message"}` shape, never a 500
or Django's HTML page; unknown paths under /api/ answer JSON 404."""

from __future__ import annotations

import pytest
import requests

from booking.services.channels import channel_issue_token
from tests.base import fake_id


@pytest.fixture
def call(public_url, db):
    token = channel_issue_token(code="JKMZWX", name="微信公众号")[1]
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, f"{public_url}{path}", timeout=60, **kwargs)

    return call


def api_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = response.json()
    assert set(body) >= {"code", "message"} and body["message"], body
    return body


@pytest.mark.django_db(transaction=True)
class MalformedRestInputTests:
    @pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/cards/check/"])
    def test_json_nested_a_hundred_thousand_deep_is_a_parse_error(self, call, path, settings):
        settings.REST_MAX_BODY_BYTES = 1024 * 1024  # past the size cap, to reach the parser itself
        body = "[" * 100_000 + "]" * 100_000
        error = api_error(call("POST", path, data=body, headers={"Content-Type": "application/json"}), 400)
        assert error["code"] == "parse_error" and "嵌套层数过多" in error["message"]
        shallow = "[" * 20 + "]" * 20
        error = api_error(call("POST", path, data=shallow, headers={"Content-Type": "application/json"}), 400)
        assert error["code"] == "parse_error"

    def test_a_fifty_megabyte_body_is_413(self, call):
        body = b'{"a": "' + b"x" * (50 * 1024 * 1024) + b'"}'
        error = api_error(call("POST", "/api/v1/orders/", data=body, headers={"Content-Type": "application/json"}), 413)
        assert error["code"] == "payload_too_large"

    def test_twenty_thousand_form_fields_are_refused(self, call):
        body = "&".join(f"f{i}=1" for i in range(20_000))
        response = call(
            "POST", "/api/v1/orders/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert api_error(response, 415)["code"] == "unsupported_media_type"

    @pytest.mark.parametrize(
        "path",
        [
            "/api/v1/doctors/?q=%00",
            "/api/v1/doctors/?hospital=%00",
            "/api/v1/schedules/?doctor=a%00b",
            "/api/v1/hospitals/%00/departments/",
            "/api/v1/orders/?page_size=%00",
        ],
    )
    def test_a_nul_in_a_query_or_a_path_is_a_400(self, call, path):
        assert api_error(call("GET", path), 400)["code"] == "invalid_request"

    def test_a_nul_inside_a_json_string_is_a_400(self, call):
        body = {"id_card": "1\u00002", "name": "x"}
        assert api_error(call("POST", "/api/v1/cards/check/", json=body), 400)["code"] == "parse_error"

    @pytest.mark.parametrize(
        "cursor",
        ["garbage", "cD0yMDI2", "cD0lMDA=", "bz0xJnI9MSZwPTIwMjYtMTMtNDA=", "cD0yMDI2LTAxLTAxKzAwOjAw"],
    )
    def test_a_garbage_cursor_is_a_4xx(self, call, cursor):
        response = call("GET", "/api/v1/schedules/", params={"cursor": cursor})
        assert response.status_code == 400 and response.json()["code"] in {"invalid_cursor", "invalid_request"}

    def test_unknown_paths_under_api_answer_json_404(self, call, public_url):
        for path in ("/api/v1/nope/", "/api/v2/orders/", "/api/"):
            assert api_error(call("GET", path), 404)["code"] == "not_found"
        anonymous = requests.get(f"{public_url}/api/v1/nothing-here", timeout=10)
        assert api_error(anonymous, 404)["code"] == "not_found"


@pytest.mark.django_db(transaction=True)
class PersonalDataInUrlTests:
    """Issue 14 item 17: an ID number never travels in a URL (access logs keep URLs)."""

    def test_orders_by_id_card_in_the_query_string_are_refused_and_the_body_form_works(self, call):
        id_card = fake_id(1)
        error = api_error(call("GET", "/api/v1/orders/", params={"id_card": id_card}), 400)
        assert "POST /api/v1/orders/search/" in error["message"] and id_card not in str(error)
        found = call("POST", "/api/v1/orders/search/", json={"id_card": id_card})
        assert found.status_code == 200 and found.json()["results"] == []
