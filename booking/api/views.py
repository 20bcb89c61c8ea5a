"""REST views for booking channels. Each translates the request, calls one service or selector and
renders the answer; errors go through booking.api.errors.exception_handler."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, pagination, renderers, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking import selectors
from booking.api.auth import ChannelRateThrottle, ChannelTokenAuthentication, IsChannel
from booking.api.errors import InvalidCursor, exception_handler
from booking.api.parsers import BoundedJSONParser
from booking.api.renderers import ChannelJSONRenderer
from booking.api.serializers import (
    CancelIn,
    CardCheckIn,
    CardCheckOut,
    CardOut,
    CardsIn,
    DepartmentOut,
    DoctorOut,
    ErrorOut,
    HospitalOut,
    OrderDetailOut,
    OrderIn,
    OrderOut,
    OrderSearchIn,
    PayIn,
    QueueOut,
    ScheduleOut,
    SlotOut,
    WaitlistIn,
    WaitlistOut,
)
from booking.models import Channel
from booking.services import live, orders, patients, reports, waitlist
from regional.selectors import hospital_by_no

ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 409: ErrorOut, 429: ErrorOut, 503: ErrorOut}


class CursorPagination(pagination.CursorPagination):
    """The one pagination style of the API: cursors (no COUNT over big tables, stable under inserts).

    A cursor that cannot be decoded is the caller's error (400 invalid_cursor), not a missing page."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise InvalidCursor() from None

    def paginate_queryset(self, queryset, request, view=None):
        # A forged cursor that decodes still carries any position text, which the database then
        # refuses as a date or a number: the caller's error too, not a 500.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, DjangoValidationError, DataError):
            raise InvalidCursor() from None


class HospitalPagination(CursorPagination):
    ordering = ("hospital_no",)


class DepartmentPagination(CursorPagination):
    ordering = ("department_id", "id")


class SchedulePagination(CursorPagination):
    ordering = ("work_date", "start_time", "id")


class DoctorPagination(CursorPagination):
    ordering = ("id",)


class OrderPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class ChannelMixin:
    authentication_classes = [ChannelTokenAuthentication]
    permission_classes = [IsChannel]
    throttle_classes = [ChannelRateThrottle]
    parser_classes = [BoundedJSONParser]
    renderer_classes = [ChannelJSONRenderer, renderers.BrowsableAPIRenderer]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL text cannot hold NUL: refuse it at the door instead of as a database error.
        for name, value in [*request.query_params.lists(), *kwargs.items()]:
            values = value if isinstance(value, list) else [str(value)]
            if any("\x00" in v for v in values) or "\x00" in name:
                raise ValidationError({name.replace("\x00", ""): ["不得包含NUL字符"]})

    def get_exception_handler(self):
        return exception_handler

    @property
    def channel(self) -> Channel:
        return self.request.auth


# -- browsing ---------------------------------------------------------------------------------------


@extend_schema(tags=["浏览"], summary="医院列表", responses={200: HospitalOut(many=True), **ERRORS})
class HospitalList(ChannelMixin, generics.ListAPIView):
    serializer_class = HospitalOut
    pagination_class = HospitalPagination

    def get_queryset(self):
        return selectors.hospital_rows(columns=HospitalOut.COLUMNS)


@extend_schema(tags=["浏览"], summary="医院的科室", responses={200: DepartmentOut(many=True), **ERRORS})
class DepartmentList(ChannelMixin, generics.ListAPIView):
    serializer_class = DepartmentOut
    pagination_class = DepartmentPagination

    def get_queryset(self):
        return selectors.department_rows(columns=DepartmentOut.COLUMNS, hospital_no=self.kwargs["hospital_no"])

    def list(self, request: Request, *args, **kwargs) -> Response:
        response = super().list(request, *args, **kwargs)
        if not response.data["results"]:
            hospital_by_no(self.kwargs["hospital_no"])  # no departments, or no such hospital: 404
        return response


@extend_schema(
    tags=["浏览"],
    summary="医生（按医院、科室、姓名或拼音简写）",
    parameters=[
        OpenApiParameter("hospital", str, description="医院编号"),
        OpenApiParameter("department", str, description="科室编号"),
        OpenApiParameter("q", str, description="姓名或拼音简写（如 ZSF）"),
    ],
    responses={200: DoctorOut(many=True), **ERRORS},
)
class DoctorList(ChannelMixin, generics.ListAPIView):
    serializer_class = DoctorOut
    pagination_class = DoctorPagination

    def get_queryset(self):
        params = self.request.query_params
        return selectors.doctor_rows(
            columns=DoctorOut.COLUMNS,
            hospital_no=params.get("hospital", ""),
            department_id=params.get("department", ""),
            q=params.get("q", ""),
        )


@extend_schema(
    tags=["浏览"],
    summary="排班（号源）",
    parameters=[
        OpenApiParameter("hospital", str, description="医院编号"),
        OpenApiParameter("department", str, description="科室编号"),
        OpenApiParameter("doctor", str, description="医生编号"),
        OpenApiParameter("date", OpenApiTypes.DATE, description="出诊日期（默认今天及以后）"),
    ],
    responses={200: ScheduleOut(many=True), **ERRORS},
)
class ScheduleList(ChannelMixin, generics.ListAPIView):
    serializer_class = ScheduleOut
    pagination_class = SchedulePagination

    def get_queryset(self):
        params = self.request.query_params
        # Rows, not objects (the cursor page reads its position from dicts too), from SQL compiled
        # once per combination of filters.
        return selectors.schedule_rows(
            columns=ScheduleOut.COLUMNS,
            hospital_no=params.get("hospital", ""),
            department_id=params.get("department", ""),
            doctor_id=params.get("doctor", ""),
            date=params.get("date", ""),
        )


class ScheduleDetail(ChannelMixin, APIView):
    @extend_schema(
        tags=["浏览"],
        summary="排班详情（剩余号源向医院实时查询：getRegistrationInfo）",
        responses={
            200: inline_serializer("ScheduleLive", {"schedule": ScheduleOut(), "live": serializers.BooleanField()}),
            **ERRORS,
        },
    )
    def get(self, request: Request, schedule_id: int) -> Response:
        schedule, is_live = live.schedule_refresh_remaining(schedule=selectors.schedule_get(schedule_id=schedule_id))
        return Response({"schedule": ScheduleOut(schedule).data, "live": is_live})


class ScheduleSlots(ChannelMixin, APIView):
    @extend_schema(
        tags=["浏览"],
        summary="分时段号源（实时：GetDaypartingDetailInfo，短暂缓存）",
        responses={
            200: inline_serializer("Slots", {"work_id": serializers.CharField(), "slots": SlotOut(many=True)}),
            **ERRORS,
        },
    )
    def get(self, request: Request, schedule_id: int) -> Response:
        schedule = selectors.schedule_get(schedule_id=schedule_id)
        return Response({"work_id": schedule.work_id, "slots": live.schedule_slots(schedule=schedule)})


class ScheduleQueue(ChannelMixin, APIView):
    @extend_schema(tags=["浏览"], summary="排队情况（实时：GetLineupDetailInfo）", responses={200: QueueOut, **ERRORS})
    def get(self, request: Request, schedule_id: int) -> Response:
        schedule = selectors.schedule_get(schedule_id=schedule_id)
        return Response(QueueOut(live.schedule_queue(schedule=schedule)).data)


# -- cards ------------------------------------------------------------------------------------------


class CardCheck(ChannelMixin, APIView):
    @extend_schema(
        tags=["诊疗卡"],
        summary="验证诊疗卡（CheckMediCardIdService）",
        request=CardCheckIn,
        responses={200: CardCheckOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = _valid(CardCheckIn, request)
        return Response(CardCheckOut(live.card_check(**data)).data)


class CardList(ChannelMixin, APIView):
    @extend_schema(
        tags=["诊疗卡"],
        summary="查询诊疗卡，未建档时由医院自动建卡（queryCardListInfo）",
        request=CardsIn,
        responses={200: inline_serializer("Cards", {"cards": CardOut(many=True)}), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = _valid(CardsIn, request)
        return Response({"cards": CardOut(live.cards_query(**data), many=True).data})


# -- orders -----------------------------------------------------------------------------------------

IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key", str, location=OpenApiParameter.HEADER, description="幂等键：重试同一请求时返回同一订单"
)


class OrderListCreate(ChannelMixin, generics.GenericAPIView):
    serializer_class = OrderOut
    pagination_class = OrderPagination

    @extend_schema(
        tags=["订单"],
        summary="预约（向医院锁号：confirmRegistration）",
        request=OrderIn,
        parameters=[IDEMPOTENCY],
        responses={201: OrderOut, 200: OrderOut, 502: ErrorOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = _valid(OrderIn, request)
        order, created = orders.order_lock(
            channel=self.channel,
            hospital_no=data["hospital_no"],
            work_id=data["work_id"],
            num_source_id=data["num_source_id"],
            patient=patients.Patient(**data["patient"]),
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        if created:  # a number just locked has no payment or refund yet: nothing to read back
            order._prefetched_objects_cache = {"ledger": order.ledger.none()}
        else:
            prefetch_related_objects([order], "ledger")
        response = Response(OrderOut(order).data, status=201 if created else 200)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        # Access logs keep URLs: a full ID number never travels in one.
        raise ValidationError(
            {"id_card": ["身份证号不得放在URL中（会被访问日志记录），请改用 POST /api/v1/orders/search/"]}
        )


class OrderSearch(ChannelMixin, generics.GenericAPIView):
    serializer_class = OrderOut
    pagination_class = OrderPagination

    @extend_schema(
        tags=["订单"],
        summary="患者的订单（本渠道下的，按身份证号；身份证号放在请求体中，不进URL和访问日志）",
        request=OrderSearchIn,
        responses={200: OrderOut(many=True), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = _valid(OrderSearchIn, request)
        query = selectors.patient_orders(channel=self.channel, id_card=data["id_card"])
        page = self.paginate_queryset(query.prefetch_related("ledger"))
        return self.get_paginated_response(OrderOut(page, many=True).data)


class OrderDetail(ChannelMixin, APIView):
    @extend_schema(
        tags=["订单"],
        summary="订单详情（向医院查询最新状态：GetOrderDetailInfo）",
        responses={200: OrderDetailOut, **ERRORS},
    )
    def get(self, request: Request, order_no: str) -> Response:
        order = reports.order_refresh(order=selectors.order_get(channel=self.channel, order_no=order_no))
        prefetch_related_objects([order], "ledger", "transitions")
        return Response(OrderDetailOut(order).data)


class OrderPay(ChannelMixin, APIView):
    @extend_schema(
        tags=["订单"], summary="支付（通知医院：PaymentNotice）", request=PayIn, responses={200: OrderOut, **ERRORS}
    )
    def post(self, request: Request, order_no: str) -> Response:
        data = _valid(PayIn, request)
        order, _changed = orders.order_pay(channel=self.channel, order_no=order_no, **data)
        prefetch_related_objects([order], "ledger")
        return Response(OrderOut(order).data)


class OrderCancel(ChannelMixin, APIView):
    @extend_schema(
        tags=["订单"],
        summary="退号（通知医院：退号通知 getPromiseNotice 3.5 / 解除锁定 UnlockReg）",
        request=CancelIn,
        responses={200: OrderOut, **ERRORS},
    )
    def post(self, request: Request, order_no: str) -> Response:
        data = _valid(CancelIn, request)
        order, _changed = orders.order_cancel(channel=self.channel, order_no=order_no, reason=data["reason"])
        prefetch_related_objects([order], "ledger")
        return Response(OrderOut(order).data)


# -- waitlist (候补) ---------------------------------------------------------------------------------


class ScheduleWaitlist(ChannelMixin, APIView):
    @extend_schema(
        tags=["候补"],
        summary="加入候补（排班号源已满时；有号源释放时按顺序为候补患者锁号）",
        request=WaitlistIn,
        responses={201: WaitlistOut, **ERRORS},
    )
    def post(self, request: Request, schedule_id: int) -> Response:
        data = _valid(WaitlistIn, request)
        entry = waitlist.waitlist_join(
            channel=self.channel, schedule_id=schedule_id, patient=patients.Patient(**data["patient"])
        )
        entry.position = next(
            (
                e.position
                for e in selectors.waitlist_entries(channel=self.channel, schedule_id=schedule_id)
                if e.pk == entry.pk
            ),
            None,
        )
        return Response(WaitlistOut(entry).data, status=201)

    @extend_schema(tags=["候补"], summary="本渠道在该排班的候补", responses={200: WaitlistOut(many=True), **ERRORS})
    def get(self, request: Request, schedule_id: int) -> Response:
        entries = selectors.waitlist_entries(channel=self.channel, schedule_id=schedule_id)
        return Response(WaitlistOut(entries, many=True).data)


class ScheduleWaitlistEntry(ChannelMixin, APIView):
    @extend_schema(tags=["候补"], summary="取消候补", responses={200: WaitlistOut, **ERRORS})
    def delete(self, request: Request, schedule_id: int, entry_id: int) -> Response:
        entry = waitlist.waitlist_leave(channel=self.channel, schedule_id=schedule_id, entry_id=entry_id)
        entry.position = None
        return Response(WaitlistOut(entry).data)


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Unknown paths under /api/ answer in the API's format, not with the HTML 404 page."""
    return JsonResponse({"code": "not_found", "message": "接口不存在，请查阅 /api/docs/"}, status=404)
