"""The sandbox payment channel over HTTP: `GET /sandbox/pay/<pay_channel>/bill?date=yyyyMMdd`.

It serves the day's bill written from the platform's ledger (reconciliation.sandbox), in the
provider's layout, with the source's difference knobs, so that the HTTP adapter can be pointed at
it exactly as at a real bill gateway. HTTP Basic with the source's own user name and secret; a
source without credentials does not serve at all.
"""

from __future__ import annotations

import datetime as dt
import hmac
import tempfile

from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from reconciliation import sandbox, selectors
from reconciliation.models import StatementSource
from regional.auth import basic_credentials
from regional.errors import DomainError


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


@require_GET
def sandbox_bill(request: HttpRequest, pay_channel: str) -> HttpResponse:
    source = StatementSource.objects.filter(pay_channel=pay_channel).first()
    if source is None or not source.username or not source.secret_encrypted:
        return _text("沙箱渠道未开通", 404)
    given = basic_credentials(request)
    if given is None or not (
        hmac.compare_digest(given[0], source.username) and hmac.compare_digest(given[1], source.secret())
    ):
        response = _text("未授权", 401)
        response["WWW-Authenticate"] = 'Basic realm="sandbox-pay"'
        return response
    try:
        day = dt.datetime.strptime(request.GET.get("date", ""), "%Y%m%d").date()
    except ValueError:
        return _text("date 应为yyyyMMdd", 400)
    if day >= timezone.localdate():
        return _text(f"{day:%Y-%m-%d}的对账单尚未生成", 404)
    try:
        knobs = sandbox.Knobs.from_options(source.sandbox_options)
    except DomainError as exc:
        return _text(exc.message, 400)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    sandbox.write_bill(
        layout=source.layout,
        bill_date=day,
        entries=selectors.ledger_bill_entries(pay_channel=pay_channel, day=day),
        out=spool,
        knobs=knobs,
        merchant_id=source.merchant_id,
    )
    spool.seek(0)
    name = f"{source.merchant_id or pay_channel}_{day:%Y%m%d}_{'ALL' if source.layout == 'wechat' else '业务明细'}.csv"
    return FileResponse(spool, as_attachment=True, filename=name, content_type="text/csv")
