"""Mixed load on the production stack (gunicorn + PostgreSQL + Redis + Celery + the standalone
sandbox hospital), then the same load with faults, then the checks that nothing went wrong.

    .venv/bin/python -m bench.bench_load [seconds]
    .venv/bin/python -m bench.bench_load profile   # one lock's queries, its cost above the hospital
                                                   # call, then the top frames of 100 locks (cProfile)

1. Mixed load from a second process on loopback for a fixed time: channel browsing, locks,
   payments, cancellations and hospital pushes (SOAP): throughput and p50/p95/p99 per endpoint.
2. The SOAP path against a bare Django view parsing the same XML, same concurrency, same run.
3. The mixed load again while the sandbox hospital is slowed, made to fail, killed and restarted,
   the Celery worker is killed and restarted and Redis is restarted.
4. After recovery: no order in an impossible state, no notification lost, counts equal on both
   sides, every failure visible (message log, outbox).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sys
import threading
import time
from collections import defaultdict

from bench.common import fake_id
from bench.stack import Stack

HOSPITALS = [("LOAD001", "压测第一医院", 3), ("LOAD002", "压测第二医院", 2)]
THREADS = 12


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summarise(samples: dict[str, list[tuple[float, int]]], seconds: float) -> dict:
    out = {}
    for name, rows in sorted(samples.items()):
        latencies = [ms for ms, _ in rows]
        statuses = defaultdict(int)
        for _, status in rows:
            statuses[str(status)] += 1
        out[name] = {
            "requests": len(rows),
            "per_second": round(len(rows) / seconds, 1),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "statuses": dict(statuses),
        }
    return out


# -- the load generator (runs in its own process) ---------------------------------------------------


def generate(config: dict, seconds: float, out: multiprocessing.Queue) -> None:
    import requests

    base, token, schedules = config["base"], config["token"], config["schedules"]
    auth = {"Authorization": f"Token {token}"}
    samples: dict[str, list] = defaultdict(list)
    lock = threading.Lock()
    to_pay: list[tuple[str, str]] = []
    paid: list[str] = []
    stop_at = time.monotonic() + seconds

    def timed(name: str, call, url: str, **kwargs):
        started = time.perf_counter()
        try:
            response = call(url, timeout=30, **kwargs)
            status = response.status_code
        except requests.RequestException:
            response, status = None, 0
        with lock:
            samples[name].append(((time.perf_counter() - started) * 1000, status))
        return response

    names = {h: name for h, name, _ in HOSPITALS}

    def worker(n: int) -> None:
        session = requests.Session()
        rnd = random.Random(n)
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            roll = rnd.random()
            hospital_no, work_id, work_date, _fee = rnd.choice(schedules)
            if roll < 0.40:
                params = {"hospital": hospital_no, "date": work_date}
                timed("GET /api/v1/schedules/", session.get, f"{base}/api/v1/schedules/", params=params, headers=auth)
            elif roll < 0.65:
                patient = {
                    "name": f"压测患者{n}",
                    "id_card": fake_id(n * 1_000_000 + i),
                    "phone": f"1340000{i % 10000:04d}",
                }
                body = {"hospital_no": hospital_no, "work_id": work_id, "patient": patient}
                r = timed("POST /api/v1/orders/", session.post, f"{base}/api/v1/orders/", json=body, headers=auth)
                if r is not None and r.status_code in (200, 201):
                    with lock:
                        to_pay.append((r.json()["order_no"], r.json()["fee"]))
            elif roll < 0.85:
                with lock:
                    item = to_pay.pop() if to_pay else None
                if item:
                    order_no, amount = item
                    pay = {"pay_type": "4", "amount": amount, "pay_trade_no": f"WX{order_no}", "pay_channel": "wepay"}
                    url = f"{base}/api/v1/orders/{order_no}/pay"
                    r = timed("POST /api/v1/orders/{no}/pay", session.post, url, json=pay, headers=auth)
                    if r is not None and r.status_code == 200:
                        with lock:
                            paid.append(order_no)
            elif roll < 0.90:
                with lock:
                    order_no = paid.pop() if paid else None
                if order_no:
                    url = f"{base}/api/v1/orders/{order_no}/cancel"
                    timed(
                        "POST /api/v1/orders/{no}/cancel", session.post, url, json={"reason": "压测取消"}, headers=auth
                    )
            else:
                xml = (
                    f"<Request><TransactionId>load-{n}-{i}-{time.time_ns()}</TransactionId><HospitalNo>{hospital_no}"
                    f"</HospitalNo><HospitalName>{names[hospital_no]}</HospitalName></Request>"
                )
                timed(
                    "SOAP HospitalInfo", session.post, f"{base}/ws/center", data=soap_envelope("HospitalInfo", xml),
                    auth=(hospital_no, config["secrets"][hospital_no]), headers={"Content-Type": "text/xml; charset=utf-8"},
                )  # fmt: skip

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(config.get("threads", THREADS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(dict(samples))


def soap_envelope(operation: str, message: str) -> bytes:
    from xml.sax.saxutils import escape

    return (
        '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
        f'<c:{operation} xmlns:c="http://regional.health/ws/center"><c:xml>{escape(message)}</c:xml></c:{operation}>'
        "</e:Body></e:Envelope>"
    ).encode()


def soap_vs_bare(config: dict, seconds: float, out: multiprocessing.Queue) -> None:
    import requests

    hospital_no = HOSPITALS[0][0]
    samples: dict[str, list] = defaultdict(list)
    lock = threading.Lock()
    for name, url, auth in (
        ("SOAP /ws/center HospitalInfo", f"{config['base']}/ws/center", (hospital_no, config["secrets"][hospital_no])),
        ("bare Django view, same XML", f"{config['base']}/bench/bare", None),
    ):
        stop_at = time.monotonic() + seconds

        def worker(n: int, name=name, url=url, auth=auth, stop_at=stop_at) -> None:
            session = requests.Session()
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                xml = (
                    f"<Request><TransactionId>r-{n}-{i}-{time.time_ns()}</TransactionId><HospitalNo>{hospital_no}</HospitalNo>"
                    "<HospitalName>压测第一医院</HospitalName></Request>"
                )
                started = time.perf_counter()
                r = session.post(
                    url,
                    data=soap_envelope("HospitalInfo", xml),
                    auth=auth,
                    headers={"Content-Type": "text/xml; charset=utf-8"},
                    timeout=30,
                )
                with lock:
                    samples[name].append(((time.perf_counter() - started) * 1000, r.status_code))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    out.put(dict(samples))


# The channel's read endpoints answered from the platform's own data (the live ones, detail, slots,
# queue and order detail, are the hospital's call), each against a bare view running its query.
READS = (
    ("GET /api/v1/schedules/", "/api/v1/schedules/", "/bench/bare-schedules-by-day"),
    ("GET /api/v1/hospitals/", "/api/v1/hospitals/", "/bench/bare-hospitals"),
    ("GET /api/v1/hospitals/{no}/departments/", "/api/v1/hospitals/{hospital}/departments/", "/bench/bare-departments"),
    ("GET /api/v1/doctors/", "/api/v1/doctors/", "/bench/bare-doctors"),
)


def reads_vs_bare(config: dict, seconds: float, out: multiprocessing.Queue) -> None:
    """Each read endpoint against its bare view (bench/urls.py), THREADS clients each, one after the
    other, `seconds` each, the same requests for both."""
    import requests

    samples: dict[str, list] = defaultdict(list)
    lock = threading.Lock()
    auth = {"Authorization": f"Token {config['token']}"}
    phases = []
    for name, path, bare in READS:
        phases += [(name, path), (f"{name} bare", bare)]
    for name, path in phases:
        stop_at = time.monotonic() + seconds

        def worker(n: int, name=name, path=path, stop_at=stop_at) -> None:
            session = requests.Session()
            rnd = random.Random(n)
            while time.monotonic() < stop_at:
                hospital_no, _work_id, work_date, _fee = rnd.choice(config["schedules"])
                department = rnd.choice(config["departments"][hospital_no])
                params = {"hospital": hospital_no}
                if "schedules" in path:
                    params["date"] = work_date
                elif "doctors" in path:
                    params["department"] = department
                url = config["base"] + path.format(hospital=hospital_no)
                started = time.perf_counter()
                try:
                    status = session.get(url, params=params, headers=auth, timeout=30).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    samples[name].append(((time.perf_counter() - started) * 1000, status))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    out.put(dict(samples))


def wait_quiet(timeout: float = 60) -> float:
    """Seconds until the worker has sent what the load phases queued (notifications, outbox): the lock
    is then timed on a quiet stack, not against a worker draining a backlog on the same two cores."""
    from booking.models import OutboxMessage, PatientNotification
    from regional.delivery import DeliveryStatus

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        busy = (
            PatientNotification.objects.filter(status=DeliveryStatus.PENDING).exists()
            or OutboxMessage.objects.filter(status=DeliveryStatus.PENDING).exists()
        )
        if not busy:
            break
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def lock_above_hospital_call(config: dict, locks: int = 40) -> dict:
    """One client, one lock after another on a quiet stack: the lock's p50 against the p50 of its own
    confirmRegistration calls as the platform's hospital client timed them (the message log)."""
    import requests

    from booking.models import Order, Schedule
    from regional.models import MessageLog

    schedule = (
        Schedule.objects.select_related("hospital")
        .filter(status=Schedule.NORMAL, remaining__gte=locks, work_date__gt=__import__("datetime").date.today())
        .order_by("-remaining")
        .first()
    )
    latencies, order_nos = [], []
    with requests.Session() as session:
        for i in range(locks):
            body = {
                "hospital_no": schedule.hospital.hospital_no,
                "work_id": schedule.work_id,
                "patient": {"name": "压测患者", "id_card": fake_id(42_000_000 + i), "phone": f"1350000{i:04d}"},
            }
            started = time.perf_counter()
            r = session.post(
                f"{config['base']}/api/v1/orders/", json=body, headers={"Authorization": f"Token {config['token']}"},
                timeout=30,
            )  # fmt: skip
            latencies.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 201, r.text[:300]
            order_nos.append(r.json()["order_no"])
    transaction_ids = Order.objects.filter(order_no__in=order_nos).values_list("lock_transaction_id", flat=True)
    calls = list(
        MessageLog.objects.filter(direction=MessageLog.OUTBOUND, transaction_id__in=list(transaction_ids)).values_list(
            "duration_ms", flat=True
        )
    )
    assert len(calls) == locks, (len(calls), locks)
    lock_p50, call_p50 = percentile(latencies, 50), percentile([float(c) for c in calls], 50)
    return {
        "locks": locks,
        "lock_p50_ms": round(lock_p50, 1),
        "hospital_call_p50_ms": round(call_p50, 1),
        "lock_cost_above_hospital_call_p50_ms": round(lock_p50 - call_p50, 1),
        "goal": "≤ 50 ms",
    }


def run_in_process(target, config: dict, seconds: float) -> dict:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.get_context("fork").Process(target=target, args=(config, seconds, queue))
    proc.start()
    result = queue.get(timeout=seconds + 300)
    proc.join(30)
    return summarise(result, seconds)


# -- the bench process: stack, seed, phases, checks --------------------------------------------------


def seed(stack: Stack) -> dict:
    from booking.services.channels import channel_issue_token
    from regional.services import hospital_onboard
    from sandbox import services as his
    from sandbox.demo import hospital_build

    secrets_by_hospital = {}
    for hospital_no, name, level in HOSPITALS:
        secret = f"load-secret-{hospital_no}-0123456789"
        secrets_by_hospital[hospital_no] = secret
        hospital_onboard(
            hospital_no=hospital_no, name=name, secret=secret,
            endpoint_url=f"http://127.0.0.1:{stack.sandbox_port}/sandbox/his/{hospital_no}/ws",
        )  # fmt: skip
        sandbox = hospital_build(
            hospital_no=hospital_no, name=name, level=level, days=2, slots=400,
            center_url=f"http://127.0.0.1:{stack.web_port}/ws/center", center_secret=secret,
        )  # fmt: skip
        for push in (
            his.center_push_hospital,
            his.center_push_departments,
            his.center_push_doctors,
            his.center_push_schedules,
        ):
            answer = push(hospital=sandbox)
            assert answer.ok, (push.__name__, answer)
    _, token = channel_issue_token(code="JKMZWX", name="微信")
    from booking.models import Schedule

    schedules = [
        (s.hospital.hospital_no, s.work_id, s.work_date.isoformat(), str(s.price))
        for s in Schedule.objects.select_related("hospital").filter(
            status=Schedule.NORMAL, work_date__gt=__import__("datetime").date.today()
        )
    ]
    from regional.models import Department

    departments = defaultdict(list)
    for hospital_no, department_id in Department.objects.filter(is_deleted=False).values_list(
        "hospital__hospital_no", "department_id"
    ):
        departments[hospital_no].append(department_id)
    return {
        "departments": dict(departments),
        "base": f"http://127.0.0.1:{stack.web_port}",
        "token": token,
        "schedules": schedules,
        "secrets": secrets_by_hospital,
    }


def inject_faults(stack: Stack, seconds: float, log: list) -> threading.Thread:
    from sandbox.models import SandboxHospital
    from sandbox.services import hospital_fault_set

    def every_hospital(**kwargs):
        for h in SandboxHospital.objects.all():
            hospital_fault_set(hospital=h, **kwargs)

    plan = [
        (0.10, "sandbox slow (1.5 s per call)", lambda: every_hospital(latency_ms=1500)),
        (0.22, "sandbox normal", lambda: every_hospital()),
        (
            0.28,
            "sandbox failing (PaymentNotice answers ResultCode 1)",
            lambda: every_hospital(mode="error", operations=["PaymentNotice"]),
        ),
        (0.38, "sandbox normal", lambda: every_hospital()),
        (0.42, "sandbox killed", lambda: stack.kill("sandbox")),
        (0.55, "sandbox restarted", lambda: stack.start("sandbox")),
        (0.60, "Celery worker killed", lambda: stack.kill("worker")),
        (0.72, "Celery worker restarted", lambda: stack.start("worker")),
        (0.78, "Redis restarted", lambda: stack.restart("redis")),
    ]

    def run():
        started = time.monotonic()
        for at, what, action in plan:
            time.sleep(max(0.0, started + at * seconds - time.monotonic()))
            action()
            log.append({"at_s": round(time.monotonic() - started, 1), "event": what})
        from django.db import connection

        connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def recover_and_check(timeout: float = 240) -> dict:
    from django.db.models import Count

    from booking.models import LedgerEntry, Order, OutboxMessage, Schedule
    from booking.services import orders, outbox
    from regional.models import MessageLog
    from sandbox.models import SandboxOrder, SandboxSchedule

    failed_during_faults = list(OutboxMessage.objects.filter(status=OutboxMessage.FAILED).values_list("pk", flat=True))
    if failed_during_faults:
        # What staff do from the admin once the hospital is healthy again: retry the failed deliveries.
        outbox.outbox_retry(message_ids=failed_during_faults)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        orders.orders_reconcile_locking()
        outbox.outbox_sweep(grace=__import__("datetime").timedelta(seconds=0))
        pending = OutboxMessage.objects.filter(status=OutboxMessage.PENDING).count()
        locking = Order.objects.filter(status=Order.LOCKING).count()
        if pending == 0 and locking == 0:
            break
        time.sleep(3)
    # What staff do from the worklist 待核实的锁号 once the load is over: read the hospital's count
    # back for locks whose answer was lost (the hospital may have let its orphan lock expire since).
    unknown = list(OutboxMessage.objects.filter(status=OutboxMessage.UNKNOWN).values_list("pk", flat=True))
    settled_by_staff = outbox.lost_lock_recheck(message_ids=unknown) if unknown else 0
    problems = []
    outbox_counts = dict(OutboxMessage.objects.values_list("status").annotate(n=Count("id")))
    if outbox_counts.get(OutboxMessage.PENDING) or outbox_counts.get(OutboxMessage.FAILED):
        problems.append(f"outbox not drained: {outbox_counts}")
    if Order.objects.filter(status=Order.LOCKING).exists():
        problems.append("orders left in locking")
    paid_without_payment = Order.objects.filter(status=Order.PAID).exclude(ledger__kind=LedgerEntry.PAYMENT).count()
    if paid_without_payment:
        problems.append(f"{paid_without_payment} paid orders without a ledger payment")
    active = Order.objects.filter(status__in=[Order.BOOKED, Order.PAID])
    platform = dict(active.values_list("workflow_id", "status"))
    his = dict(SandboxOrder.objects.filter(status__in=["1", "2"]).values_list("work_flow_id", "status"))
    if set(platform) != set(his):
        problems.append(
            f"active orders differ: only platform {len(set(platform) - set(his))}, only hospital {len(set(his) - set(platform))}"
        )
    mismatched = [w for w, s in platform.items() if his.get(w) and his[w] != s]
    if mismatched:
        problems.append(f"{len(mismatched)} orders with different states on the two sides")
    # booked_count counts every order that ever referred to the schedule (it guards deletion).
    booked = Schedule.objects.annotate(orders_n=Count("orders"))
    wrong_counts = [s.work_id for s in booked if s.booked_count != s.orders_n]
    if wrong_counts:
        problems.append(f"{len(wrong_counts)} schedules whose booked_count differs from their orders")
    his_remaining = dict(SandboxSchedule.objects.values_list("work_id", "remaining"))
    differ = [s.work_id for s in booked if his_remaining.get(s.work_id) != s.remaining]
    if differ:
        problems.append(f"{len(differ)} schedules whose remaining count differs between platform and hospital")
    return {
        "problems": problems,
        "orders": dict(Order.objects.values_list("status").annotate(n=Count("id"))),
        "outbox": outbox_counts,
        "active_orders_platform": len(platform),
        "active_orders_hospital": len(his),
        "failures_in_message_log": MessageLog.objects.filter(ok=False).count(),
        "outbound_failures_in_message_log": MessageLog.objects.filter(ok=False, direction=MessageLog.OUTBOUND).count(),
        "failed_deliveries_retried_by_staff": len(failed_during_faults),
        "lost_locks_rechecked_by_staff": len(unknown),
        "lost_locks_settled_by_recheck": settled_by_staff,
        "still_failed": list(
            OutboxMessage.objects.filter(status=OutboxMessage.FAILED).values_list("kind", "attempts", "last_error")[:10]
        ),
        "outbox_with_errors_recorded": OutboxMessage.objects.exclude(last_error="").count(),
    }


def profile_lock(locks: int = 100) -> None:
    """The lock path in this process (the REST view through the sandbox hospital over HTTP, on the
    stack's PostgreSQL, Redis and Celery worker): what it costs above the hospital call, and where."""
    import cProfile
    import pstats

    stack = Stack()
    stack.start_services()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from booking.models import Schedule
    from regional import hospital_client

    call_command("migrate", verbosity=0)
    for name in ("web", "sandbox", "worker"):
        stack.start(name)
    config = seed(stack)
    schedule = (
        Schedule.objects.select_related("hospital")
        .filter(status=Schedule.NORMAL, work_date__gt=__import__("datetime").date.today())
        .order_by("-remaining")
        .first()
    )
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {config['token']}")
    seq = iter(range(43_000_000, 44_000_000))
    calls: list[float] = []
    real_call = hospital_client.call

    def timed_call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_call(*args, **kwargs)
        finally:
            calls.append((time.perf_counter() - started) * 1000)

    hospital_client.call = timed_call

    def lock() -> float:
        i = next(seq)
        body = {
            "hospital_no": schedule.hospital.hospital_no,
            "work_id": schedule.work_id,
            "patient": {"name": "压测患者", "id_card": fake_id(i), "phone": f"135{i % 10**8:08d}"},
        }
        started = time.perf_counter()
        r = client.post("/api/v1/orders/", data=body, content_type="application/json")
        assert r.status_code == 201, r.content[:300]
        return (time.perf_counter() - started) * 1000

    try:
        for _ in range(10):
            lock()
        with CaptureQueriesContext(connection) as captured:
            lock()
        print(f"# one lock: {len(captured.captured_queries)} queries")
        for q in captured.captured_queries:
            print(f"{q['time']}s  {q['sql'][:150]}")
        calls.clear()
        spent: dict[str, list[float]] = defaultdict(list)

        def timed_query(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent[" ".join(sql.split()[:6])[:90]].append((time.perf_counter() - started) * 1000)

        with connection.execute_wrapper(timed_query):
            totals = [lock() for _ in range(40)]
        print("# the database, per lock: total ms, calls, statement")
        for sql, times in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
            print(f"{sum(times) / 40:7.2f} {len(times) / 40:4.1f}  {sql}")
        above = [t - c for t, c in zip(totals, calls, strict=True)]
        print(
            f"# 40 locks: lock p50 {percentile(totals, 50):.1f} ms, hospital call p50 {percentile(calls, 50):.1f} ms,"
            f" cost above the call p50 {percentile(above, 50):.1f} ms (goal ≤ 50 ms)"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(locks):
            lock()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        dump = os.path.join(stack.logs, "lock.prof")
        profiler.dump_stats(dump)
        print(f"# the whole profile: {dump} (python -m pstats)")
    finally:
        hospital_client.call = real_call
        stack.stop_all()


def main() -> None:
    if sys.argv[1:] == ["profile"]:
        return profile_lock()
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    stack = Stack()
    stack.start_services()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for name in ("web", "sandbox", "worker"):
        stack.start(name)
    config = seed(stack)
    report = {"seconds": seconds, "schedules": len(config["schedules"]), "threads": THREADS}
    report["mixed_load"] = run_in_process(generate, config, seconds)
    ratio = run_in_process(soap_vs_bare, config, seconds / 3)
    soap, bare = ratio["SOAP /ws/center HospitalInfo"], ratio["bare Django view, same XML"]
    report["soap_vs_bare"] = {**ratio, "throughput_ratio": round(soap["per_second"] / bare["per_second"], 2)}
    reads = run_in_process(reads_vs_bare, config, seconds / 4)
    report["reads_vs_bare"] = {
        name: {
            "subject": reads[name],
            "bare": reads[f"{name} bare"],
            "throughput_ratio": round(reads[name]["per_second"] / reads[f"{name} bare"]["per_second"], 2),
        }
        for name, _, _ in READS
    }
    report["reads_vs_bare"]["goal"] = "each ≥ 0.5"
    report["lock_vs_hospital_call"] = {"waited_for_quiet_s": wait_quiet(), **lock_above_hospital_call(config)}
    events: list = []
    faults = inject_faults(stack, seconds, events)
    report["load_with_faults"] = run_in_process(generate, config, seconds)
    faults.join()
    report["fault_events"] = events
    report["after_recovery"] = recover_and_check()
    print(json.dumps(report, ensure_ascii=False, indent=2))
    stack.stop_all()
    sys.exit(1 if report["after_recovery"]["problems"] else 0)


if __name__ == "__main__":
    main()
