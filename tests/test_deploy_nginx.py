"""Issue 14 items 9 and 17: the nginx site of deploy/, run by a real nginx in front of the live server.

Its access log keeps no query string (ID numbers, referral link codes) and /healthz is rate-limited
per address. The site file is used as shipped, with only ports, certificates and paths swapped.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.services import free_port, require_binary

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy")


@pytest.fixture
def nginx(live_server, tmp_path):
    binary = require_binary("nginx", "nginx-light")
    site = open(os.path.join(DEPLOY, "nginx-regional.conf"), encoding="utf-8").read()
    plain, front = free_port(), free_port()
    upstream = live_server.url.removeprefix("http://")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{plain};")
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{front};")
    site = re.sub(r"^\s*ssl_.*$", "", site, flags=re.M)
    site = site.replace("server 127.0.0.1:8000;", f"server {upstream};")
    site = site.replace("/etc/nginx/regional-proxy.conf", os.path.join(DEPLOY, "regional-proxy.conf"))
    access = tmp_path / "access.log"
    site = site.replace("/var/log/nginx/regional.access.log", str(access))
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"""user root; daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {tmp_path}/default.log;
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""",
        encoding="utf-8",
    )
    check = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()[-2000:]
    proc = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")])
    base = f"http://127.0.0.1:{front}"
    for _ in range(100):
        try:
            requests.get(f"{base}/interfaces/", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    yield base, access
    proc.terminate()
    proc.wait(10)


@pytest.mark.django_db(transaction=True)
class NginxSiteTests:
    def test_the_access_log_keeps_no_query_string(self, nginx):
        base, access = nginx
        requests.get(f"{base}/api/v1/orders/", params={"id_card": "3306XXXXXXXXXX0001"}, timeout=10)
        requests.get(f"{base}/referral/referral/his.html", params={"referralCode": "LINKCODE123"}, timeout=10)
        time.sleep(0.3)
        log = access.read_text(encoding="utf-8")
        assert "/api/v1/orders/" in log and "/referral/referral/his.html" in log
        assert "3306XXXXXXXXXX0001" not in log and "LINKCODE123" not in log and "?" not in log

    def test_healthz_is_rate_limited_per_address(self, nginx):
        base, _ = nginx
        with ThreadPoolExecutor(24) as pool:
            codes = list(pool.map(lambda _: requests.get(f"{base}/healthz", timeout=30).status_code, range(40)))
        assert codes.count(429) >= 20, codes
        assert [c for c in codes if c != 429] and all(c in (200, 503) for c in codes if c != 429), codes
