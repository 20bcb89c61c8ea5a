"""The server-rendered SVG charts and the p95 from the latency buckets."""

from __future__ import annotations

from lxml import etree

from supervision import charts
from supervision.models import LATENCY_BUCKETS_MS, LATENCY_FIELDS
from supervision.selectors import p95_from

HOSTILE = '<script>alert("x")</script>医院'


class ChartTests:
    def test_every_chart_is_well_formed_svg_with_labels_escaped(self):
        drawn = [
            charts.trend([("1月", 3), ("2月", None), ("3月", 5.5), (HOSTILE, 2)], title="预约量趋势", unit="人次"),
            charts.ranking([(HOSTILE, 10), ("乙医院", 4)], title="排名"),
            charts.flow(
                [
                    {
                        "sending__name": HOSTILE,
                        "receiving__name": "乙医院",
                        "direction": "up",
                        "submitted": 3,
                        "accepted": 2,
                    }
                ]
            ),  # fmt: skip
        ]
        for svg in drawn:
            root = etree.fromstring(str(svg).encode())
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            assert "<script>" not in str(svg) and not root.findall(".//{http://www.w3.org/2000/svg}script")

    def test_a_chart_without_data_still_renders(self):
        assert etree.fromstring(str(charts.flow([])).encode()) is not None
        assert etree.fromstring(str(charts.ranking([], title="排名")).encode()) is not None


class P95Tests:
    def test_the_p95_is_the_upper_bound_of_the_bucket_holding_the_95th_call(self):
        counters = dict.fromkeys(LATENCY_FIELDS, 0)
        counters[LATENCY_FIELDS[0]] = 94  # ≤ 50 ms
        counters[LATENCY_FIELDS[3]] = 6  # ≤ 300 ms: the 95th of 100 calls is here
        assert p95_from(counters) == LATENCY_BUCKETS_MS[3] == 300
        counters[LATENCY_FIELDS[0]] = 95
        counters[LATENCY_FIELDS[3]] = 5
        assert p95_from(counters) == 50
        assert p95_from(dict.fromkeys(LATENCY_FIELDS, 0)) is None
