"""The channel's documentation is the OpenAPI document: every error code, the life cycle, real
examples, one pagination style, and a client built from /api/schema/ alone that books, pays, cancels
and joins a waitlist against the sandbox hospital over HTTP."""

from __future__ import annotations

import copy
import importlib
import pathlib
import re
import uuid

import jsonschema
import pytest
import requests

from booking.api import docs
from booking.api.errors import DRF_CODES
from regional.errors import DomainError
from tests.base import patient, region_rules

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def domain_errors() -> dict[str, int]:
    """code → HTTP status of every DomainError a channel's request can end in (booking and regional)."""
    for module in ("booking.errors", "regional.errors", "regional.hospital_client"):
        importlib.import_module(module)
    found: dict[str, int] = {}
    pending = [DomainError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # The sandbox hospital is a simulated partner: its errors never reach a channel.
        if cls.__module__.startswith(("booking.", "regional.")) and ".sandbox" not in cls.__module__:
            found[cls.code] = cls.http_status
    return found


class OpenApi:
    """A channel's client driven by the OpenAPI document alone: operations by operationId, requests and
    answers checked against the document's schemas."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.document = requests.get(f"{base}/api/schema/", params={"format": "json"}, timeout=30).json()
        self.operations = {
            operation["operationId"]: (method.upper(), path, operation)
            for path, item in self.document["paths"].items()
            for method, operation in item.items()
        }

    def schema(self, node: dict) -> dict:
        """An OpenAPI 3.0 schema as JSON Schema: references resolved, `nullable` turned into null."""
        node = copy.deepcopy(node)
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return self.schema(self.document["components"]["schemas"][name])
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
            node["anyOf"][0] = self.schema(node["anyOf"][0])
            return node
        for key in ("properties",):
            if key in node:
                node[key] = {name: self.schema(value) for name, value in node[key].items()}
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                node[key] = self.schema(node[key])
        for key in ("allOf", "oneOf", "anyOf"):
            if key in node:
                node[key] = [self.schema(value) for value in node[key]]
        return node

    def call(self, operation_id: str, *, body: dict | None = None, headers: dict | None = None, **params):
        method, path, operation = self.operations[operation_id]
        query = {}
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if parameter["in"] == "path":
                path = path.replace("{" + name + "}", str(params.pop(name)))
            elif parameter["in"] == "query" and name in params:
                query[name] = params.pop(name)
            elif parameter.get("required") and parameter["in"] == "query":
                raise AssertionError(f"{operation_id}: {name} is required by the document")
        assert not params, f"{operation_id} has no parameters {sorted(params)}"
        if body is not None:
            content = operation["requestBody"]["content"]["application/json"]
            jsonschema.validate(body, self.schema(content["schema"]))
        response = self.session.request(
            method, self.base + path, params=query, json=body, headers=headers or {}, timeout=60
        )
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{operation_id} answered {response.status_code}, not in the document"
        assert documented.get("description"), f"{operation_id} {response.status_code} has no description"
        answer = response.json()
        jsonschema.validate(answer, self.schema(documented["content"]["application/json"]["schema"]))
        return response.status_code, answer, response


@pytest.mark.django_db
class DocumentTests:
    def test_every_error_code_a_channel_can_receive_is_listed_with_its_http_status(self):
        listed = {code: status for code, status, _ in docs.ERROR_CODES}
        expected = {**domain_errors(), "rate_limited": 429, "internal_error": 500, "invalid_request": 400}
        expected.update({code: cls.status_code for cls, (code, _message) in DRF_CODES.items()})
        assert {code: listed.get(code) for code in expected} == expected
        assert all(meaning for _, _, meaning in docs.ERROR_CODES)

    def test_the_description_has_the_life_cycle_the_rules_pagination_and_a_curl_quick_start(self, client):
        schema = client.get("/api/schema/", {"format": "json"}).json()
        text = schema["info"]["description"]
        for status, label, _how, _next in docs.ORDER_STATES:
            assert f"| {status} | {label} |" in text
        for needed in ("15 分钟", "**201**", "**200**", "Idempotent-Replayed", "候补规则", "游标", "curl -s -X POST"):
            assert needed in text, needed
        assert "按 GB 11643 校验" in text  # the ID-number check the platform applies
        assert docs.QUICK_START in README.read_text(encoding="utf-8")  # the README shows the same quick-start

    def test_every_error_response_is_described_and_examples_are_real(self, client):
        schema = client.get("/api/schema/", {"format": "json"}).json()
        for path, item in schema["paths"].items():
            for method, operation in item.items():
                for status, response in operation["responses"].items():
                    assert response.get("description"), f"{method} {path} {status}"
        components = schema["components"]["schemas"]
        api = OpenApi.__new__(OpenApi)
        api.document = schema
        for name, example in docs.EXAMPLES.items():
            assert name in components, name
            jsonschema.validate(example, api.schema(components[name]))
        text = str(schema)
        assert "api.example.org" not in text and "9223372036854776000" not in text

    def test_pay_channel_is_an_enum_and_patient_out_is_described_in_chinese(self, client):
        schema = client.get("/api/schema/", {"format": "json"}).json()
        components = schema["components"]["schemas"]
        pay_channel = components["PayIn"]["properties"]["pay_channel"]
        refs = [r["$ref"].rsplit("/", 1)[-1] for r in pay_channel.get("oneOf", [])] or [pay_channel.get("$ref", "")]
        values = {v for ref in refs if ref for v in components[ref.rsplit("/", 1)[-1]].get("enum", [])}
        assert {"alipay", "wepay"} <= values
        assert re.search(r"[\u4e00-\u9fff]", components["PatientOut"]["description"])
        assert all(p.get("description") for p in components["PatientOut"]["properties"].values())

    def test_a_bad_cursor_answers_400_invalid_cursor(self, rest):
        response = rest.get("/api/v1/schedules/", {"cursor": "not-a-cursor"})
        assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"

    def test_hospitals_and_departments_page_by_cursor_like_every_list(self, client):
        schema = client.get("/api/schema/", {"format": "json"}).json()
        for path in ("/api/v1/hospitals/", "/api/v1/hospitals/{hospital_no}/departments/", "/api/v1/schedules/"):
            operation = schema["paths"][path]["get"]
            names = {p["name"] for p in operation["parameters"]}
            assert "cursor" in names and "page" not in names, path


@pytest.fixture
def rest(client, channel):
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {channel[1]}"
    return client


@pytest.mark.django_db(transaction=True)
class SchemaClientTests:
    def test_a_client_from_the_schema_alone_books_pays_cancels_and_joins_a_waitlist(
        self, public_url, channel, bookable
    ):
        api = OpenApi(public_url, channel[1])
        region_rules(waitlist_close_minutes=60)
        _, schedule = bookable(slots=1, days_ahead=1)
        status, page, _ = api.call("v1_schedules_list", hospital=schedule.hospital.hospital_no)
        listed = next(s for s in page["results"] if s["work_id"] == schedule.work_id)
        assert status == 200 and listed["remaining"] == 1
        body = {"hospital_no": listed["hospital_no"], "work_id": listed["work_id"], "patient": patient(1)}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        status, order, _ = api.call("v1_orders_create", body=body, headers=key)
        assert status == 201 and order["status"] == "1" and order["lock_expires_at"]
        status, again, http = api.call("v1_orders_create", body=body, headers=key)
        assert (
            status == 200 and again["order_no"] == order["order_no"] and http.headers["Idempotent-Replayed"] == "true"
        )
        # The number is taken: the next patient joins the waitlist (the region has a waitlist rule).
        status, entry, _ = api.call(
            "v1_schedules_waitlist_create", schedule_id=listed["id"], body={"patient": patient(2)}
        )
        assert status == 201 and entry["status"] == "waiting" and entry["position"] == 1
        pay = {"pay_type": "4", "amount": order["fee"], "pay_trade_no": f"T{order['order_no']}", "pay_channel": "wepay"}
        status, paid, _ = api.call("v1_orders_pay_create", order_no=order["order_no"], body=pay)
        assert status == 200 and paid["status"] == "2" and paid["pay_channel"] == "wepay"
        status, cancelled, _ = api.call(
            "v1_orders_cancel_create", order_no=order["order_no"], body={"reason": "行程有变"}
        )
        assert status == 200 and cancelled["status"] == "3" and cancelled["refund_amount"] == order["fee"]
        status, waiting, _ = api.call("v1_schedules_waitlist_list", schedule_id=listed["id"])
        assert status == 200 and [e["id"] for e in waiting] == [entry["id"]]
