"""The catalog against the specification's own field tables (../shared/spec/000_*.txt).

Every request and response table of the four documents is read (名称/代码, 是否必填/约束, 长度（字节）)
and compared with the catalog's description of the same message: element names, required marks and
lengths. Two rules follow from CONTRACT.md, everything else must match or be listed in DELIBERATE:

- What the platform *reads* (center requests, hospital answers, referral requests) may be more liberal
  than the table: require less, allow longer (CONTRACT.md section 3). It may never be stricter —
  a catalog requiring `Count` or capping `CreateTime` at 20 refuses what the specification allows.
- What the platform *sends* (hospital requests, center answers, referral answers) may be stricter,
  never more liberal: a hospital's column holds what its table says.

Lengths of integers, enumerations, booleans and Base64 content are not compared: their kind bounds
the value (the tables print `1` for the Int ResultCode and none for a picture).
"""

from __future__ import annotations

import collections
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from regional.messages.catalog import ALL_INTERFACES, CENTER, HOSPITAL, REFERRAL, Interface
from regional.messages.schema import BLOB, BOOL, ENUM, INT, Field, Group, Message, RecordList

# (section, "request"/"response", lower-cased element name, what differs) → why.
DELIBERATE: dict[tuple[str, str, str, str], str] = {
    # parm only comes with result true; a refusal has nothing to open.
    ("3.1.3.1", "response", "parm", "required"): "parm 仅在 result 为 true 时返回",
    ("3.1.3.2", "response", "parm", "required"): "parm 仅在 result 为 true 时返回",
    # The referral token authenticates a hospital (CONTRACT.md section 4); the query table omits it.
    ("3.1.3.2", "request", "token", "extra"): "访问码用于认证（CONTRACT.md 第4节）",
    # An outpatient bespeak links the referral to a booking: when it is sent, it must identify it.
    **{
        ("3.1.3.3", "request", name, "required"): "bespeak 出现时须能定位挂号记录"
        for name in ("ghdh", "rsid", "status", "yyrq", "ksdm", "ksmc", "ysgh", "ysxm")
    },
    # A time slot without its numSourceId cannot be booked by time slot.
    ("3.8", "response", "numsourceid", "required"): "无号源ID的时段无法按时段预约",
    # HospitalInfo may carry the same SeqNo as DepartmentInfo and DoctorInfo; it is optional.
    ("5.1", "request", "seqno", "extra"): "与科室、医生信息一致的可选排序字段",
}

# The platform sends these messages; it reads the others.
SENT = {(HOSPITAL, "request"), (CENTER, "response"), (REFERRAL, "response")}
UNBOUNDED_KINDS = {INT, ENUM, BOOL, BLOB}


def spec_file() -> Path:
    configured = os.environ.get("REGIONAL_SPEC_FILE")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        found = sorted((parent / "shared" / "spec").glob("000_*.txt"))
        if found:
            return found[0]
    pytest.fail("未找到接口规范 ../shared/spec/000_*.txt（可用 REGIONAL_SPEC_FILE 指定）")


@dataclass(frozen=True)
class Row:
    name: str
    required: bool
    length: int | None
    line: int


@dataclass
class Table:
    line: int
    section: str
    side: str
    rows: list[Row]


def _blocks(text: str):
    """Blocks of lines between empty lines; a line holding only a tab is an empty cell, not a break."""
    block: list[str] = []
    start = 0
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip() and "\t" not in line:
            if block:
                yield start, block
            block = []
            continue
        if not block:
            start = number
        block.append(line)
    if block:
        yield start, block


def _cells(block: list[str]) -> list[str]:
    # Each cell starts with a tab; a line without one continues the cell above (multi-line 说明).
    cells: list[str] = []
    for line in block:
        if line.startswith("\t") or not cells:
            cells.append(line.removeprefix("\t"))
        else:
            cells[-1] += "\n" + line
    return [c.strip() for c in cells]


def read_tables(path: Path) -> list[Table]:
    text = re.sub(r"\[bookmark: [^\]]*\]", "", path.read_text(encoding="utf-8"))
    section = ""
    tables: list[Table] = []
    current: Table | None = None
    columns: list[str] = []
    for start, block in _blocks(text):
        for line in block:
            heading = re.match(r"^(\d+(?:\.\d+)+) ", line)
            if heading:
                section = heading.group(1)
        cells = _cells(block)
        head = next((i for i, c in enumerate(cells[:2]) if c in ("名称", "代码")), None)
        if head is not None and len(cells) - head >= 3 and cells[head + 1] in ("说明", "名称"):
            columns = cells[head:]
            # Lines 1-760 are the referral document; 2.x and 5.x are center side, 3.x and 6.x hospital side.
            side = REFERRAL if start < 761 else CENTER if section[0] in "25" else HOSPITAL
            current = Table(start, section, side, [])
            tables.append(current)
            continue
        if current is None or not block[0].startswith("\t"):
            current = None
            continue
        if len(cells) < 5:
            continue  # a node label: Request请求参数节点, WorkInfo排班列表, Record单个排班信息
        row = dict(zip(columns, cells, strict=False))
        required = row.get("是否必填") or row.get("约束") or ""
        length = row.get("长度（字节）") or row.get("长度") or row.get("类型长度") or ""
        current.rows.append(
            Row(
                name=row.get("代码") or row["名称"],
                required=required in ("是", "必填"),
                length=int(length) if length.isdigit() else None,
                line=start,
            )
        )
    return tables


def _catalog_nodes(message: Message) -> list[Field | Group | RecordList]:
    found: list = []

    def walk(nodes):
        for node in nodes:
            found.append(node)
            if not isinstance(node, Field):
                walk(node.fields)

    walk(message.fields)
    return found


def _by_occurrence(items, name) -> dict[tuple[str, int], object]:
    # Names repeat inside one message (changeWorkNotice's WorkId in NewWorkInfo): the n-th meets the n-th.
    seen: collections.Counter = collections.Counter()
    out = {}
    for item in items:
        key = name(item).lower()
        seen[key] += 1
        out[(key, seen[key])] = item
    return out


def differences(iface: Interface, which: str, table: Table) -> list[tuple[tuple[str, str, str, str], str]]:
    message = iface.request if which == "request" else iface.response
    sent = (iface.side, which) in SENT
    spec = _by_occurrence(table.rows, lambda r: r.name)
    # RecordList containers have no row of their own (WorkInfo排班列表 is a label); groups do (bespeak).
    nodes = [n for n in _catalog_nodes(message) if not isinstance(n, RecordList)]
    ours = _by_occurrence(nodes, lambda n: n.name)
    found = []

    def note(key, what, detail):
        found.append(((iface.section, which, key[0], what), f"{iface.section} {iface.name} {which} {detail}"))

    for key in spec.keys() - ours.keys():
        note(key, "missing", f"缺少 {spec[key].name}（规范第{spec[key].line}行）")
    for key in ours.keys() - spec.keys():
        if not isinstance(ours[key], Group) or any(r.name.lower() == key[0] for r in table.rows):
            note(key, "extra", f"多出 {ours[key].name}")
    for key in spec.keys() & ours.keys():
        row, node = spec[key], ours[key]
        if row.required != node.required and (row.required if sent else node.required):
            note(key, "required", f"{row.name} 必填：规范{row.required}，目录{node.required}")
        if not isinstance(node, Field) or node.kind in UNBOUNDED_KINDS:
            continue
        ours_len, spec_len = node.max_length, row.length
        if ours_len == spec_len:
            continue
        if sent:
            wrong = spec_len is not None and (ours_len is None or ours_len > spec_len)
        else:
            wrong = ours_len is not None and (spec_len is None or ours_len < spec_len)
        if wrong:
            note(key, "length", f"{row.name} 长度：规范{spec_len}，目录{ours_len}")
    return found


@pytest.fixture(scope="module")
def tables_by_interface() -> dict[tuple[str, str], list[Table]]:
    grouped: dict[tuple[str, str], list[Table]] = collections.defaultdict(list)
    for table in read_tables(spec_file()):
        grouped[(table.side, table.section)].append(table)
    return grouped


class SpecificationTableTests:
    def test_every_interface_has_its_request_and_response_table(self, tables_by_interface):
        for iface in ALL_INTERFACES:
            tables = tables_by_interface[(iface.side, iface.section)]
            assert len(tables) == 2, f"{iface.section} {iface.name}: {len(tables)} tables"
            assert all(t.rows for t in tables), f"{iface.section} {iface.name}: empty table"
        assert sum(len(t) for t in tables_by_interface.values()) == 2 * len(ALL_INTERFACES)

    @pytest.mark.parametrize("iface", ALL_INTERFACES, ids=lambda i: f"{i.side}.{i.section}.{i.name}")
    def test_the_catalog_matches_the_specifications_tables(self, iface, tables_by_interface):
        request_table, response_table = tables_by_interface[(iface.side, iface.section)]
        found = differences(iface, "request", request_table) + differences(iface, "response", response_table)
        unexplained = sorted(text for key, text in found if key not in DELIBERATE)
        assert unexplained == []

    def test_every_deliberate_choice_is_still_a_difference(self, tables_by_interface):
        # A choice that no longer differs is stale: remove it so the list stays the real list.
        found = set()
        for iface in ALL_INTERFACES:
            request_table, response_table = tables_by_interface[(iface.side, iface.section)]
            for key, _text in differences(iface, "request", request_table) + differences(
                iface, "response", response_table
            ):
                found.add(key)
        assert sorted(set(DELIBERATE) - found) == []

    def test_a_stricter_reading_than_the_specification_is_caught(self, tables_by_interface):
        # The checker itself: a catalog requiring synchronizedWorkInfo's Count (the table leaves it
        # empty) or capping queryCardListInfo's CreateTime at 20 (the table says 100) is reported.
        from dataclasses import replace

        from regional.messages.catalog import QUERY_CARD_LIST, SYNCHRONIZED_WORK_INFO

        def strict(message: Message, name: str, **changes) -> Message:
            def walk(nodes):
                out = []
                for node in nodes:
                    if isinstance(node, Field) and node.name == name:
                        out.append(replace(node, **changes))
                    elif isinstance(node, Field):
                        out.append(node)
                    else:
                        out.append(replace(node, fields=walk(node.fields)))
                return tuple(out)

            return replace(message, fields=walk(message.fields))

        work = replace(SYNCHRONIZED_WORK_INFO, request=strict(SYNCHRONIZED_WORK_INFO.request, "Count", required=True))
        cards = replace(QUERY_CARD_LIST, response=strict(QUERY_CARD_LIST.response, "CreateTime", max_length=20))
        work_found = differences(work, "request", tables_by_interface[(CENTER, "2.1")][0])
        cards_found = differences(cards, "response", tables_by_interface[(HOSPITAL, "6.2")][1])
        assert [key for key, _ in work_found] == [("2.1", "request", "count", "required")]
        assert [key for key, _ in cards_found] == [("6.2", "response", "createtime", "length")]
