"""Large messages: the message log keeps a masked head of them at a cost that follows what it keeps."""

from __future__ import annotations

from lxml import etree

from regional.messagelog import LOG_TEXT_LIMIT, masked_xml
from regional.messages import read_xml
from regional.messages.catalog import QUERY_CARD_LIST

CARDS = 5000


def card_list(count: int) -> str:
    data = QUERY_CARD_LIST.response.example(records=count)
    for n, card in enumerate(data["cardList"]):
        card.update(Name="测试患者", phone=f"134{n:08d}", CardNo=f"A{n:09d}")
    return QUERY_CARD_LIST.response.render(data)


class LargeMessageLogTests:
    def test_a_large_message_is_logged_as_its_masked_head_with_a_note_of_what_was_left_out(self):
        root = read_xml(card_list(CARDS))
        before = etree.tostring(root)
        text = masked_xml(root, QUERY_CARD_LIST.response)
        body, _, note = text.rpartition("\n…（报文过长，日志只保留开头部分")
        assert len(body) <= LOG_TEXT_LIMIT + len("\n…（报文过长，已截断）")
        assert f"<cardList>的{CARDS}项中记录了前" in note
        assert "<phone>134****0000</phone>" in body and "<Name>测**</Name>" in body
        assert "测试患者" not in text and "13400000000" not in text and "A000000000" not in text
        assert etree.tostring(root) == before  # the caller's tree is untouched

    def test_a_message_within_the_budget_is_logged_whole(self):
        text = masked_xml(card_list(3), QUERY_CARD_LIST.response)
        assert "报文过长" not in text
        assert text.count("<phone>") == 3 and "13400000002" not in text
