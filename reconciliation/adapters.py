"""How a statement source's daily bill is fetched: one small interface, one way — HTTP.

- `HttpAdapter`: a GET of a configured URL (placeholders {date} yyyyMMdd, {day} yyyy-MM-dd,
  {merchant}) with HTTP Basic credentials, a timeout and a size cap; a gzip body (WeChat's
  `tar_type=GZIP`) is unpacked. It suits a bill gateway that does the provider's request signing.
- `SandboxAdapter`: the same download from the sandbox channel, a simulated partner reached over
  HTTP like any gateway (`/sandbox/pay/<channel>/bill` on PUBLIC_BASE_URL unless a URL is set).

Adapters only fetch; `services.statement_fetch` imports what they return. They never run inside
a database transaction.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import shutil
import tempfile
from typing import BinaryIO, Protocol
from urllib.parse import unquote

import requests
from django.conf import settings

from reconciliation.models import StatementSource
from regional.errors import DomainError

MAX_BYTES = 512 * 1024 * 1024
SPOOL_BYTES = 8 * 1024 * 1024


class StatementUnavailable(DomainError):
    """The bill could not be fetched (not yet generated, the channel unreachable, refused)."""

    code = "statement_unavailable"
    http_status = 503


class Adapter(Protocol):
    def fetch(self, source: StatementSource, bill_date: dt.date) -> tuple[BinaryIO, str]:
        """The bill of `bill_date` as a binary, seekable stream at position 0, and a file name."""


class HttpAdapter:
    def url_of(self, source: StatementSource) -> str:
        return source.url

    def fetch(self, source: StatementSource, bill_date: dt.date) -> tuple[BinaryIO, str]:
        template = self.url_of(source)
        if not template:
            raise StatementUnavailable(f"{source.name}未配置下载地址")
        url = template.format(date=f"{bill_date:%Y%m%d}", day=f"{bill_date:%Y-%m-%d}", merchant=source.merchant_id)
        auth = (source.username, source.secret()) if source.username else None
        timeout = max(int(source.timeout_seconds or 60), 1)
        try:
            response = requests.get(url, auth=auth, timeout=(min(timeout, 10), timeout), stream=True)
        except requests.Timeout as exc:
            raise StatementUnavailable(f"下载{source.name}对账单超时（{timeout}秒）") from exc
        except requests.RequestException as exc:
            raise StatementUnavailable(f"无法连接{source.name}对账单地址（{type(exc).__name__}）") from exc
        with response:
            if response.status_code == 404:
                raise StatementUnavailable(f"{source.name}尚未生成{bill_date:%Y-%m-%d}的对账单（HTTP 404）")
            if response.status_code in (401, 403):
                raise StatementUnavailable(
                    f"{source.name}拒绝了下载请求（HTTP {response.status_code}），请检查用户名和密钥"
                )
            if response.status_code >= 400:
                raise StatementUnavailable(f"下载{source.name}对账单失败（HTTP {response.status_code}）")
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
            size = 0
            try:
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise StatementUnavailable(f"{source.name}对账单超过{MAX_BYTES // 1024 // 1024}MB，已停止下载")
                    spool.write(chunk)
            except requests.RequestException as exc:
                spool.close()
                raise StatementUnavailable(f"下载{source.name}对账单中断（{type(exc).__name__}）") from exc
            except StatementUnavailable:
                spool.close()
                raise
            name = (
                _filename(response.headers.get("Content-Disposition", ""))
                or f"{source.pay_channel}_{bill_date:%Y%m%d}.csv"
            )
        spool.seek(0)
        if spool.read(2) == b"\x1f\x8b":
            spool.seek(0)
            unpacked = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
            with gzip.GzipFile(fileobj=spool, mode="rb") as packed:
                shutil.copyfileobj(packed, unpacked)
            spool.close()
            spool, name = unpacked, re.sub(r"\.gz(ip)?$", "", name)
        spool.seek(0)
        return spool, name


def _filename(disposition: str) -> str:
    """The file name of a Content-Disposition header, RFC 5987 `filename*=UTF-8''…` first."""
    star = re.search(r"filename\*\s*=\s*([\w-]+)''([^;]+)", disposition, re.IGNORECASE)
    if star:
        try:
            return unquote(star.group(2).strip(), encoding=star.group(1), errors="strict")[:200]
        except (LookupError, UnicodeDecodeError):
            pass
    plain = re.search(r'filename\s*=\s*"?([^";]+)"?', disposition, re.IGNORECASE)
    return plain.group(1).strip()[:200] if plain else ""


class SandboxAdapter(HttpAdapter):
    def url_of(self, source: StatementSource) -> str:
        default = f"{settings.PUBLIC_BASE_URL}/sandbox/pay/{source.pay_channel}/bill?date={{date}}"
        return source.url or default


ADAPTERS: dict[str, Adapter] = {StatementSource.HTTP: HttpAdapter(), StatementSource.SANDBOX: SandboxAdapter()}


def adapter_for(source: StatementSource) -> Adapter:
    try:
        return ADAPTERS[source.adapter]
    except KeyError:
        raise DomainError(f"{source.name}只接受人工上传对账单") from None
