"""The referral servlet and the doctors' pages.

- `POST /referral/api/SxzzAppServlet`: raw XML in any declared encoding; the root element picks
  the service (referral.protocol), the answer keeps that root.
- `his.html?referralCode=…&type=…`: the sending doctor's application form, then the referral slip.
- `znts.html?referralCode=…`: the receiving hospital's notice with accept / reject / arrived.
Links open without a login; staff of the admin open any referral with `?id=<pk>` (personal data
masked). The rules live in referral.services.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from referral import protocol, selectors, services
from referral.forms import AcceptForm, NoteForm, ReasonForm, SubmitForm
from referral.models import PERSONAL_FIELDS, Referral, ReferralAccess, ReferralBooking
from referral.services import Actor
from regional import auth, ratelimit
from regional.errors import DomainError, InvalidInput
from regional.messages.catalog import REFERRAL_START
from regional.models import Hospital
from regional.pii import mask

XML = "text/xml; charset=UTF-8"


# -- the servlet ------------------------------------------------------------------------------------


@csrf_exempt
def servlet(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        text = REFERRAL_START.response.render(protocol.failure(REFERRAL_START, "请使用HTTP POST提交XML报文"))
        return HttpResponse(text, content_type=XML, status=405, headers={"Allow": "POST"})
    # Counted before the body is read: an address sending floods costs neither parsing nor storage.
    address = auth.client_address(request)
    if not ratelimit.allow(f"servlet-address:{address}", limit=settings.RATE_LIMIT_ADDRESS_PER_MINUTE):
        text = REFERRAL_START.response.render(
            protocol.failure(REFERRAL_START, "请求过于频繁：超过每分钟调用上限，请稍后重试")
        )
        return HttpResponse(text, content_type=XML, status=429, headers={"Retry-After": str(ratelimit.retry_after())})
    try:
        raw = request.body
    except RequestDataTooBig:
        text = protocol.refuse(
            REFERRAL_START,
            "报文过大，超过平台允许的上限",
            address=auth.client_address(request),
            body=b"",
            started=time.monotonic(),
        )
        return HttpResponse(text, content_type=XML)
    charset = request.content_params.get("charset") if request.content_params else None
    text, status = protocol.handle(request, raw, charset=charset)
    response = HttpResponse(text, content_type=XML, status=status)
    if status == 429:
        response["Retry-After"] = str(ratelimit.retry_after())
    return response


# -- opening a referral by link or as staff -----------------------------------------------------------


class Unavailable(Exception):
    """The page cannot be shown: a Chinese title and text, and the HTTP status."""

    def __init__(self, status: int, title: str, text: str):
        super().__init__(title)
        self.status, self.title, self.text = status, title, text


@dataclass
class Opened:
    referral: Referral
    actor: Actor
    can_act: bool
    masked: bool
    staff: bool
    query: str  # the query string that reopens this page (for links and the department search)


def _resolve(request: HttpRequest, audience: str) -> Opened:
    pk = request.GET.get("id", "").strip()
    if pk:
        user = request.user
        if not user.is_authenticated:
            raise Unavailable(401, "请先登录管理后台", "平台工作人员请登录管理后台后再打开转诊单。")
        if not (user.is_staff and user.has_perm("referral.view_referral")):
            raise Unavailable(403, "无权查看转诊单", "您的账号没有查看转诊单的权限。")
        referral = (
            Referral.objects.select_related("sending_hospital", "receiving_hospital", "receiving_department")
            # ASCII digits only: '²'.isdigit() is True and int('²') raises.
            .filter(pk=int(pk) if pk.isascii() and pk.isdigit() and len(pk) < 19 else 0)
            .first()
        )
        if referral is None:
            raise Unavailable(404, "转诊单不存在", "未找到该转诊单。")
        return Opened(
            referral,
            Actor.staff(user),
            can_act=user.has_perm("referral.change_referral"),
            masked=True,
            staff=True,
            query=f"id={referral.pk}",
        )
    code = request.GET.get("referralCode", "").strip()
    if not code:
        raise Unavailable(404, "缺少转诊单链接参数", "请从HIS系统中重新打开转诊单。")
    try:
        access = services.referral_link_open(code=code, audience=audience)
    except services.LinkExpired:
        raise Unavailable(410, "转诊单链接已过期", "为保护患者信息，转诊单链接有有效期。请从HIS系统中重新打开。")
    except services.LinkUnknown:
        raise Unavailable(404, "转诊单链接无效", "未找到该链接对应的转诊单，请从HIS系统中重新打开。")
    referral = access.referral
    if audience == ReferralAccess.SENDER:
        actor = Actor.doctor(access.hospital, access.doctor_code, referral.sending_doctor_name)
    else:
        actor = Actor.doctor(access.hospital, access.doctor_code)
    query = f"referralCode={code}"
    if audience == ReferralAccess.SENDER:
        query += f"&type={referral.care_type}"
    return Opened(referral, actor, can_act=True, masked=False, staff=False, query=query)


def _unavailable(request: HttpRequest, exc: Unavailable) -> HttpResponse:
    if exc.status == 401:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    response = render(request, "referral/unavailable.html", {"title": exc.title, "text": exc.text}, status=exc.status)
    return _private(response)


def _private(response: HttpResponse) -> HttpResponse:
    # The link code is a credential in the URL: never send it to other sites in a Referer header
    # ("same-origin", not "no-referrer": Chromium then posts forms with `Origin: null`, failing CSRF).
    response["Referrer-Policy"] = "same-origin"
    # These pages show a party what it sent or already holds (CONTRACT.md section 6), also when a
    # form comes back with errors; the suite's leak check reads this mark.
    response.shows_own_personal_data = True
    return response


def _shown(referral: Referral, attr: str, masked: bool) -> str:
    value = getattr(referral, attr) or ""
    return mask(value, PERSONAL_FIELDS[attr]) if masked and attr in PERSONAL_FIELDS else value


def _details(referral: Referral, masked: bool) -> dict:
    """Display values of the referral (personal data masked for staff: reveal is the admin's job)."""
    shown = {attr: _shown(referral, attr, masked) for attr in PERSONAL_FIELDS}
    shown["birth_date"] = referral.birth_date.strftime("%Y-%m-%d") if referral.birth_date else ""
    return shown


def _attach(form, errors: dict[str, str]) -> None:
    for key, text in errors.items():
        form.add_error(key if key in form.fields else None, text)


def _context(request: HttpRequest, opened: Opened, **extra) -> dict:
    referral = opened.referral
    return {
        "referral": referral,
        "d": _details(referral, opened.masked),
        "opened": opened,
        "transitions": referral.transitions.select_related("actor_user").all(),
        "booking": ReferralBooking.objects.filter(referral=referral).first(),
        "order": selectors.referral_order(referral=referral),
        "this_url": request.get_full_path(),
        **extra,
    }


# -- his.html: the sending doctor's application form --------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def his_form(request: HttpRequest) -> HttpResponse:
    try:
        opened = _resolve(request, ReferralAccess.SENDER)
    except Unavailable as exc:
        return _unavailable(request, exc)
    referral = opened.referral
    initial = {
        "hospital": referral.receiving_hospital.hospital_no if referral.receiving_hospital else "",
        "department": referral.receiving_department.department_id if referral.receiving_department else "",
        "urgency": referral.urgency,
        "purpose": referral.purpose,
        "notes": referral.notes,
    }
    form = SubmitForm(initial=initial)
    cancel_form = ReasonForm(prefix="cancel")
    if request.method == "POST":
        if not opened.can_act:
            return _unavailable(request, Unavailable(403, "无权操作", "您的账号没有修改转诊单的权限。"))
        action = request.POST.get("action")
        try:
            if action == "submit":
                form = SubmitForm(request.POST)
                if form.is_valid():
                    services.referral_submit(
                        referral=referral,
                        actor=opened.actor,
                        receiving_hospital=form.cleaned_data["hospital"],
                        receiving_department=form.cleaned_data["department"],
                        urgency=form.cleaned_data["urgency"],
                        purpose=form.cleaned_data["purpose"],
                        notes=form.cleaned_data["notes"],
                    )
                    messages.success(request, "转诊申请已提交，等待转入医院接收。")
                    return redirect(request.get_full_path())
            elif action == "cancel":
                cancel_form = ReasonForm(request.POST, prefix="cancel")
                if cancel_form.is_valid():
                    services.referral_cancel(
                        referral=referral, actor=opened.actor, reason=cancel_form.cleaned_data["reason"]
                    )
                    messages.success(request, "转诊已取消。")
                    return redirect(request.get_full_path())
            else:
                messages.error(request, "未知的操作。")
        except InvalidInput as exc:
            _attach(cancel_form if action == "cancel" else form, exc.errors)
        except DomainError as exc:
            messages.error(request, exc.message)
        referral.refresh_from_db()
    chosen = _chosen_hospital(form, referral)
    departments = selectors.department_search(hospital=chosen) if chosen else []
    context = _context(
        request,
        opened,
        form=form,
        cancel_form=cancel_form,
        hospitals=selectors.hospital_choices(exclude=referral.sending_hospital),
        departments=departments,
        chosen_hospital=chosen.hospital_no if chosen else "",
        chosen_department=(form["department"].value() or "") if form.is_bound else initial["department"],
        departments_url=reverse("referral:departments") + "?" + opened.query,
        can_cancel=referral.status in (Referral.Status.DRAFT, Referral.Status.SUBMITTED),
    )
    status = 400 if request.method == "POST" else 200
    return _private(render(request, "referral/his.html", context, status=status))


def _chosen_hospital(form: SubmitForm, referral: Referral) -> Hospital | None:
    code = (form["hospital"].value() or "").strip() if form.is_bound else ""
    if code:
        return Hospital.objects.filter(hospital_no=code, is_deleted=False).first()
    return referral.receiving_hospital


@never_cache
@require_GET
def department_options(request: HttpRequest) -> JsonResponse:
    """Departments of a hospital for the application form's search (name, code or pinyin initials)."""
    try:
        _resolve(request, ReferralAccess.SENDER)
    except Unavailable as exc:
        return JsonResponse(
            {"results": [], "error": exc.title}, status=exc.status, json_dumps_params={"ensure_ascii": False}
        )
    hospital = Hospital.objects.filter(hospital_no=request.GET.get("hospital", ""), is_deleted=False).first()
    results = selectors.department_search(hospital=hospital, q=request.GET.get("q", "")[:50]) if hospital else []
    return JsonResponse({"results": results}, json_dumps_params={"ensure_ascii": False})


# -- znts.html: the receiving hospital's notice --------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def znts_notice(request: HttpRequest) -> HttpResponse:
    try:
        opened = _resolve(request, ReferralAccess.RECEIVER)
    except Unavailable as exc:
        return _unavailable(request, exc)
    referral = opened.referral
    accept_form = AcceptForm(prefix="accept")
    reject_form = ReasonForm(prefix="reject")
    note_form = NoteForm(prefix="step")
    if request.method == "POST":
        if not opened.can_act:
            return _unavailable(request, Unavailable(403, "无权操作", "您的账号没有修改转诊单的权限。"))
        action = request.POST.get("action")
        form = {"accept": accept_form, "reject": reject_form}.get(action, note_form)
        try:
            if action == "accept":
                form = accept_form = AcceptForm(request.POST, prefix="accept")
                if form.is_valid():
                    work_id, note = form.cleaned_data["schedule"], form.cleaned_data["note"]
                    if work_id:
                        # A booking refusal (号源已满, 停诊, hospital unavailable) is shown on this form
                        # by the DomainError branch below; the referral then stays un-accepted.
                        services.referral_accept_with_booking(
                            referral=referral, actor=opened.actor, work_id=work_id, note=note
                        )
                        messages.success(request, "已接收转诊，并已为患者预约挂号。")
                    else:
                        services.referral_accept(referral=referral, actor=opened.actor, note=note)
                        messages.success(request, "已接收转诊。")
                    return redirect(request.get_full_path())
            elif action == "reject":
                form = reject_form = ReasonForm(request.POST, prefix="reject")
                if form.is_valid():
                    services.referral_reject(referral=referral, actor=opened.actor, reason=form.cleaned_data["reason"])
                    messages.success(request, "已拒绝转诊。")
                    return redirect(request.get_full_path())
            elif action in ("arrive", "complete"):
                form = note_form = NoteForm(request.POST, prefix="step")
                if form.is_valid():
                    step = services.referral_arrive if action == "arrive" else services.referral_complete
                    step(referral=referral, actor=opened.actor, note=form.cleaned_data["note"])
                    messages.success(request, "已登记患者到院。" if action == "arrive" else "转诊已完成。")
                    return redirect(request.get_full_path())
            elif action == "return":
                back, code = services.referral_return(original=referral, actor=opened.actor)
                messages.success(request, "已生成回转申请单，请填写后提交。")
                return redirect(reverse("referral:his") + f"?referralCode={code}&type={back.care_type}")
            else:
                messages.error(request, "未知的操作。")
        except InvalidInput as exc:
            _attach(form, exc.errors)
        except DomainError as exc:
            if action == "accept":
                form.add_error(None, exc.message)
            else:
                messages.error(request, exc.message)
        referral.refresh_from_db()
    schedules = []
    if referral.status == Referral.Status.SUBMITTED:
        schedules = selectors.booking_schedules_for(
            hospital=referral.receiving_hospital, department_code=referral.receiving_department_code, bookable=True
        )
    context = _context(
        request,
        opened,
        accept_form=accept_form,
        reject_form=reject_form,
        note_form=note_form,
        schedules=schedules,
        # The accept form offers the schedules itself; the read-only list is for those who cannot act.
        offers_booking=opened.can_act and referral.status == Referral.Status.SUBMITTED,
        returns=referral.returns.all(),
    )
    status = 400 if request.method == "POST" else 200
    return _private(render(request, "referral/znts.html", context, status=status))
