"""Reading the providers' bills: both layouts, both encodings, and every refusal with its line."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from reconciliation.statements import StatementFileError, open_bill
from sandbox import payments as sandbox

DAY = dt.date(2026, 11, 25)


def at(hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(DAY, dt.time(hour, minute)))


ENTRIES = [
    sandbox.BillEntry("T0001", "4200000001", "payment", Decimal("12.50"), at(8), "H0001"),
    sandbox.BillEntry("T0002", "4200000002", "payment", Decimal("30.00"), at(9), "H0001", type="2"),
    sandbox.BillEntry("T0001", "4200000001", "refund", Decimal("12.50"), at(10), "H0001", refund_no="T0001R1"),
    sandbox.BillEntry("T0003", "4200000003", "payment", Decimal("0.01"), at(23, 59), "H0002"),
]


def written(layout: str, encoding: str = "utf-8", entries=ENTRIES, **knobs) -> bytes:
    out = io.BytesIO()
    sandbox.write_bill(
        layout=layout, bill_date=DAY, entries=entries, out=out, knobs=sandbox.Knobs(encoding=encoding, **knobs)
    )
    return out.getvalue()


def read(content: bytes | str, layout: str | None = None, day: dt.date = DAY, encoding: str = "utf-8"):
    data = content.encode(encoding) if isinstance(content, str) else content
    bill = open_bill(io.BytesIO(data), bill_date=day, layout=layout)
    return bill, list(bill.rows())


def refused(content: bytes | str, layout: str | None = None, **kw) -> StatementFileError:
    with pytest.raises(StatementFileError) as caught:
        read(content, layout, **kw)
    return caught.value


class WechatBillTests:
    @pytest.mark.parametrize("encoding,label", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030")])
    def test_a_sandbox_bill_reads_back_row_for_row_in_each_encoding(self, encoding, label):
        content = written("wechat", encoding)
        assert content.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
        assert "交易时间".encode("gbk") in content if encoding == "gbk" else "交易时间".encode() in content
        bill, rows = read(content, "wechat")
        assert bill.layout == "wechat" and bill.encoding == label and bill.account == "1900000109"
        assert [(r.batch, r.kind, r.amount, r.pay_trade_no) for r in rows] == [
            (e.batch, e.kind, e.amount, e.pay_trade_no) for e in ENTRIES
        ]
        assert rows[2].refund_no == "T0001R1" and rows[2].status == "REFUND"
        assert rows[0].hospital_hint == "H0001" and rows[0].occurred_at == at(8)
        assert (bill.totals.payment_count, bill.totals.payment_total) == (3, Decimal("42.51"))
        assert (bill.totals.refund_count, bill.totals.refund_total) == (1, Decimal("12.50"))

    def test_every_value_carries_the_backtick_and_the_summary_closes_the_file(self):
        lines = written("wechat").decode().splitlines()
        assert lines[0].startswith("交易时间,公众账号ID,商户号,") and "应结订单金额" in lines[0]
        assert all(cell.startswith("`") for cell in lines[1].split(","))
        assert lines[-2].startswith("总交易单数,应结订单总金额,退款总金额")
        assert lines[-1].split(",")[:3] == ["`4", "`42.51", "`12.50"]

    def test_an_older_account_layout_with_other_column_names_reads(self):
        content = (
            "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
            "总金额,代金券或立减优惠金额,微信退款单号,商户退款单号,退款金额,代金券或立减优惠退款金额,退款类型,退款状态,"
            "商品名称,商户数据包,手续费,费率\n"
            "`2026-11-25 16:33:45,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`T0009,"
            "`085e9858e3ba5186aafcbaed1,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`6.00,`0.0,`0,`0,`0,`0,`,`,`挂号费,`H0001,`0,`0.60%\n"
            "总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额\n"
            "`1,`6.00,`0.00,`0.0,`0\n"
        )
        bill, rows = read(content, "wechat")
        assert [(r.batch, r.kind, r.amount) for r in rows] == [("T0009", "payment", Decimal("6.00"))]
        assert bill.account == "10000100"

    def test_a_line_with_a_missing_column_is_refused_with_its_number(self):
        lines = written("wechat").decode().splitlines()
        lines[2] = lines[2].rsplit(",", 1)[0]
        error = refused("\n".join(lines))
        assert error.line == 3 and "应有27列，实际26列" in error.message
        assert error.message.startswith("对账单第3行：")

    def test_an_unknown_trade_state_is_refused(self):
        content = written("wechat").decode().replace("`SUCCESS", "`NOTPAY", 1)
        assert "交易状态“NOTPAY”无法识别" in refused(content).message

    def test_an_amount_with_three_decimals_is_refused(self):
        content = written("wechat").decode().replace("`12.50,`0.00,`0,", "`12.505,`0.00,`0,", 1)
        error = refused(content)
        assert error.line == 2 and "应为最多两位小数的金额" in error.message

    def test_a_file_saved_over_by_a_spreadsheet_is_refused(self):
        content = written("wechat").decode().replace("`4200000001,", "`4.2E+9,", 1)
        assert "科学计数法" in refused(content).message

    def test_a_truncated_file_without_its_summary_is_refused(self):
        lines = written("wechat").decode().splitlines()[:-2]
        error = refused("\n".join(lines) + "\n")
        assert "缺少汇总数据" in error.message and error.line == 6

    def test_a_summary_that_disagrees_with_the_rows_is_refused(self):
        content = written("wechat").decode().replace("`4,`42.51", "`4,`42.52")
        error = refused(content)
        assert "应结订单总金额为42.52，明细合计为42.51" in error.message

    def test_a_row_of_another_day_is_refused(self):
        content = written("wechat").decode()
        error = refused(content, day=DAY + dt.timedelta(days=1))
        assert error.line == 2 and "不在账单日期2026-11-26内" in error.message

    def test_bytes_that_are_neither_utf8_nor_gbk_are_refused_with_their_line(self):
        content = written("wechat").replace(b"`JSAPI", b"`\xff\xfeJSAPI", 1)
        error = refused(content)
        assert error.line == 2 and "无法识别的字符" in error.message

    def test_an_empty_or_unrelated_file_is_refused(self):
        assert "文件为空" in refused(b"\n\n").message
        assert "无法识别的对账单格式" in refused("name,amount\nx,1\n").message

    def test_an_alipay_file_for_a_wechat_source_is_refused(self):
        error = refused(written("alipay"), "wechat")
        assert error.line == 1 and "文件是支付宝业务明细，与所选来源（微信支付交易账单）不符" in error.message


class AlipayBillTests:
    @pytest.mark.parametrize("encoding,label", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030")])
    def test_a_sandbox_bill_reads_back_row_for_row_in_each_encoding(self, encoding, label):
        bill, rows = read(written("alipay", encoding), "alipay")
        assert bill.layout == "alipay" and bill.encoding == label and bill.account == "20880000000000000156"
        assert [(r.batch, r.kind, r.amount, r.pay_trade_no) for r in rows] == [
            (e.batch, e.kind, e.amount, e.pay_trade_no) for e in ENTRIES
        ]
        assert rows[2].refund_no == "T0001R1" and rows[2].status == "退款"
        assert bill.totals.payment_total == Decimal("42.51") and bill.totals.refund_total == Decimal("12.50")

    def test_the_file_has_the_providers_comment_header_and_footer(self):
        lines = written("alipay").decode().splitlines()
        assert lines[0] == "#支付宝业务明细查询" and lines[1].startswith("#账号：[")
        assert lines[2] == "#起始日期：[2026年11月25日 00:00:00]   终止日期：[2026年11月26日 00:00:00]"
        assert lines[4].startswith("支付宝交易号,商户订单号,业务类型,") and "退款批次号/请求号" in lines[4]
        assert "-12.50" in lines[7] and lines[7].split(",")[0].endswith("\t")
        assert lines[-4].startswith("#-----") and "业务明细列表结束" in lines[-4]
        assert lines[-3] == "#交易合计：3笔，商家实收共42.51元，商家优惠共0.00元"
        assert lines[-2] == "#退款合计：1笔，商家实收共-12.50元，商家优惠共0.00元"

    def test_a_bill_of_another_day_is_refused_at_its_header(self):
        error = refused(written("alipay"), "alipay", day=DAY - dt.timedelta(days=1))
        assert error.line == 3 and "账单起始日期为2026-11-25，与账单日期2026-11-24不符" in error.message

    def test_a_bill_cut_before_its_end_marker_is_refused(self):
        lines = written("alipay").decode().splitlines()[:-4]
        assert "缺少“业务明细列表结束”标记" in refused("\n".join(lines)).message

    def test_a_total_line_that_disagrees_is_refused_at_that_line(self):
        content = written("alipay").decode().replace("#交易合计：3笔", "#交易合计：4笔")
        error = refused(content)
        assert error.line == 11 and "交易合计为4笔，明细实有3笔" in error.message

    def test_an_unknown_business_type_is_refused(self):
        content = written("alipay").decode().replace(",交易,", ",冻结,", 1)
        assert "业务类型“冻结”无法识别" in refused(content).message


ACCOUNT_BILL = """#支付宝账务明细查询
#账号：[20880000000000000156]
#起始日期：[2026年11月25日 00:00:00]   终止日期：[2026年11月26日 00:00:00]
#-----------------------------------------账务明细列表----------------------------------------
账务流水号,业务流水号,商户订单号,商品名称,发生时间,对方账号,收入金额（+元）,支出金额（-元）,账户余额（元）,交易渠道,业务类型,备注
54632446537371\t,2026112522001400000001\t,T0001\t,预约挂号费\t,2026-11-25 09:02:06,张** (134****0001)\t,12.50,0.00,112.50,支付宝,在线支付,H0001
54632446537372\t,2026112522001400000001\t,\t,服务费\t,2026-11-25 09:02:06,支付宝\t,0.00,-0.08,112.42,支付宝,收费,
54632446537373\t,2026112522001400000002\t,T0002\t,预约挂号费\t,2026-11-25 10:31:32,李** (134****0002)\t,30.00,0.00,142.42,支付宝,在线支付,H0001
54632446537374\t,2026112522001400000001\t,T0001\t,预约挂号费\t,2026-11-25 18:00:00,张** (134****0001)\t,0.00,-12.50,129.92,支付宝,交易退款,H0001
#-----------------------------------------账务明细列表结束------------------------------------
#支出合计：2笔，共-12.58元
#收入合计：2笔，共42.50元
#导出时间：[2026年11月26日 09:30:00]
"""


class AlipayAccountBillTests:
    def test_the_account_statement_layout_reads_trades_and_skips_fees(self):
        bill, rows = read(ACCOUNT_BILL.encode("gbk"), "alipay")
        assert bill.layout == "alipay" and bill.encoding == "gb18030" and bill.account == "20880000000000000156"
        assert [(r.batch, r.kind, r.amount, r.pay_trade_no) for r in rows] == [
            ("T0001", "payment", Decimal("12.50"), "2026112522001400000001"),
            ("T0002", "payment", Decimal("30.00"), "2026112522001400000002"),
            ("T0001", "refund", Decimal("12.50"), "2026112522001400000001"),
        ]
        assert rows[0].hospital_hint == "H0001" and rows[2].status == "交易退款"

    def test_totals_that_disagree_with_the_movements_are_refused(self):
        content = ACCOUNT_BILL.replace("#收入合计：2笔，共42.50元", "#收入合计：2笔，共42.00元")
        error = refused(content.encode("gbk"))
        assert error.line == 12 and "收入合计为2笔42.00元，明细实有2笔42.50元" in error.message
