"""Coverage-guided fuzzing (atheris/libFuzzer) of everything that reads outside input.

    .venv/bin/python -m bench.fuzz [seconds-per-target]

Targets, each in its own process on a throwaway embedded database:
- reader:   the hardened XML reader on arbitrary bytes (only XmlReadError may come out);
- center:   POST /ws/center with a fuzzed inner message for each of the eight operations, as an
            authenticated hospital: the answer is always a well-formed <Response> with ResultCode,
            never a 500, and a refusal writes nothing;
- referral: POST /referral/api/SxzzAppServlet with fuzzed bodies: always a well-formed answer;
- rest:     the channels' REST API with a token: fuzzed JSON bodies to every POST endpoint and
            fuzzed query strings to every GET endpoint; always JSON, never a 500, errors in the
            API's {"code", "message"} shape.
Each target starts from the specification's examples as its corpus. Prints runs and finds.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "fixtures" / "spec"
TARGETS = ("reader", "center", "referral", "rest")
REST_POSTS = ("/api/v1/orders/", "/api/v1/orders/search/", "/api/v1/cards/check/", "/api/v1/cards/",
              "/api/v1/orders/NOPE123/pay/", "/api/v1/orders/NOPE123/cancel/", "/api/v1/schedules/1/waitlist/")  # fmt: skip
REST_GETS = ("/api/v1/hospitals/", "/api/v1/doctors/", "/api/v1/schedules/", "/api/v1/hospitals/H0001/departments/",
             "/api/v1/orders/", "/api/v1/schedules/1/", "/api/v1/doctors/?cursor=")  # fmt: skip
REST_SEEDS = (
    b'{"hospital_no": "H0001", "work_id": "W1", "num_source_id": "1", "patient": {"name": "x", "id_card": "1"}}',
    b'{"id_card": "3306XXXXXXXXXX0001"}', b'{"hospital_no": "H0001", "card_no": "C1", "id_card": "1", "name": "x"}',
    b"q=ZSF&hospital=H0001", b"date=2026-01-01&doctor=D01&page_size=5", b"cursor=cD0yMDI2LTAxLTAx",
)  # fmt: skip
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _django() -> None:
    os.environ.setdefault("REGIONAL_VAR_DIR", tempfile.mkdtemp(prefix="regional-fuzz-"))
    os.environ["DATABASE_URL"] = "sqlite://:memory:"  # one thread, one connection: fast and throwaway
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["RATE_LIMIT_HOSPITAL_PER_MINUTE"] = "0"
    import logging

    import django

    django.setup()
    logging.disable(logging.CRITICAL)  # the fuzzer reads outcomes, not logs
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _counts() -> tuple:
    from regional.models import Department, Doctor, Hospital

    counts = [Hospital.objects.count(), Department.objects.count(), Doctor.objects.count()]
    try:
        from booking.models import Schedule

        counts.append(Schedule.objects.count())
    except ImportError:
        pass
    return tuple(counts)


def target(name: str, seconds: int, corpus: str) -> None:
    import atheris

    with atheris.instrument_imports():
        from lxml import etree

    if name == "reader":
        from regional.messages import XmlReadError, read_xml

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()

        def one(data: bytes) -> None:
            try:
                read_xml(data)
            except XmlReadError:
                pass

    elif name == "center":
        _django()
        import base64
        from xml.sax.saxutils import escape

        from django.test import Client

        from regional.messages.catalog import CENTER_INTERFACES
        from regional.services import hospital_onboard

        hospital_onboard(hospital_no="H0001", name="模糊测试医院", secret="fuzz-secret-0123456789")
        client = Client()
        auth = "Basic " + base64.b64encode(b"H0001:fuzz-secret-0123456789").decode()
        ops = [i.name for i in CENTER_INTERFACES]

        def one(data: bytes) -> None:
            if not data:
                return
            op = ops[data[0] % len(ops)]
            # A SOAP client cannot put characters XML forbids into an envelope; everything else goes.
            message = _XML_FORBIDDEN.sub("", data[1:].decode("utf-8", "replace"))
            envelope = (
                '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
                f'<c:{op} xmlns:c="http://regional.health/ws/center"><c:xml>{escape(message)}</c:xml></c:{op}>'
                "</e:Body></e:Envelope>"
            )
            before = _counts()
            response = client.generic(
                "POST", "/ws/center", envelope.encode(), content_type="text/xml", HTTP_AUTHORIZATION=auth
            )
            assert response.status_code == 200, response.status_code
            body = etree.fromstring(response.content)
            result = next(e for e in body.iter() if isinstance(e.tag, str) and e.tag.endswith("Result"))
            answer = etree.fromstring(result.text.encode())
            assert answer.tag == "Response" and answer.findtext("ResultCode") in {"0", "1"}
            if answer.findtext("ResultCode") == "1":
                assert _counts() == before, "a refused message changed data"

    elif name == "rest":
        _django()
        from django.test import Client

        from booking.services.channels import channel_issue_token

        os.environ["RATE_LIMIT_CHANNEL_PER_MINUTE"] = "0"
        from django.conf import settings

        settings.RATE_LIMIT_CHANNEL_PER_MINUTE = 0
        client = Client(HTTP_AUTHORIZATION=f"Token {channel_issue_token(code='JKMZWX', name='模糊测试渠道')[1]}")

        def one(data: bytes) -> None:
            if not data:
                return
            selector, rest = data[0], data[1:]
            if selector % 2:
                path = REST_POSTS[(selector // 2) % len(REST_POSTS)]
                response = client.generic("POST", path, rest, content_type="application/json")
            else:
                path = REST_GETS[(selector // 2) % len(REST_GETS)]
                joiner = "&" if "?" in path else "?"
                response = client.get(path + joiner + rest.decode("latin-1"))
            assert response.status_code < 500, (path, response.status_code)
            assert response["Content-Type"].startswith("application/json"), (path, response["Content-Type"])
            body = json.loads(response.content)
            if response.status_code >= 400:
                assert body.get("code") and body.get("message"), body

    else:
        _django()
        from django.test import Client

        from regional.services import hospital_onboard

        hospital_onboard(hospital_no="PDY1234567890", name="模糊测试医院", secret="T12302234-fuzz-secret")
        client = Client()

        def one(data: bytes) -> None:
            response = client.generic("POST", "/referral/api/SxzzAppServlet", data, content_type="text/xml")
            assert response.status_code < 500, response.status_code
            answer = etree.fromstring(response.content)
            assert answer.findtext("result") in {"true", "false", "error"}, response.content[:200]

    def test_one_input(data: bytes) -> None:
        one(data)

    artifacts = tempfile.mkdtemp(prefix="fuzz-findings-")
    argv = [sys.argv[0], f"-max_total_time={seconds}", "-rss_limit_mb=4096", f"-artifact_prefix={artifacts}/", corpus]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def _seed(name: str) -> str:
    corpus = tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    if name == "rest":
        for i, seed in enumerate(REST_SEEDS):
            for selector in range(0, 2 * max(len(REST_POSTS), len(REST_GETS)), 3):
                # odd selectors post JSON, even ones send the seed as a query string
                if (selector % 2 == 1) == seed.startswith(b"{"):
                    (pathlib.Path(corpus) / f"seed{i}-{selector}").write_bytes(bytes([selector]) + seed)
        return corpus
    for i, path in enumerate(sorted(SPEC.glob("*.xml"))):
        text = path.read_bytes()
        if name == "center":
            if not path.name.startswith("center.") or not path.name.endswith(".request.xml"):
                continue
            from regional.messages.catalog import CENTER_INTERFACES

            op = path.name.split(".")[1]
            index = [i.name for i in CENTER_INTERFACES].index(op)
            text = bytes([index]) + text.replace(b"<HospitalNo></HospitalNo>", b"<HospitalNo>H0001</HospitalNo>")
        elif name == "referral" and not path.name.startswith("referral"):
            continue
        (pathlib.Path(corpus) / f"seed{i}").write_bytes(text)
    return corpus


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--target":
        target(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    results = {}
    for name in TARGETS:
        corpus = _seed(name)
        done = subprocess.run(
            [sys.executable, "-m", "bench.fuzz", "--target", name, str(seconds), corpus],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        out = done.stdout + done.stderr
        runs = re.findall(r"Done (\d+) runs", out) or re.findall(r"#(\d+)\s", out)
        results[name] = {
            "seconds": seconds,
            "runs": int(runs[-1]) if runs else 0,
            "crashes": 0 if done.returncode == 0 else 1,
            "corpus_files": len(os.listdir(corpus)),
        }
        if done.returncode != 0:
            results[name]["finding"] = out[-1500:]
    print(json.dumps(results, ensure_ascii=False, indent=2))
    sys.exit(1 if any(r["crashes"] for r in results.values()) else 0)


if __name__ == "__main__":
    main()
