"""Declarative message descriptions, and the parsing, validation and rendering they drive.

A `Message` lists its elements once: name, Chinese label, kind, required, maximum length,
enumeration codes, and whether the value is personal data.

Lengths are the specification's 长度（字节）. Reading is liberal and counts characters (a byte limit
is never smaller than the same number of characters); a message the platform sends is checked in
bytes of the receiver's encoding (`parse(..., encoding="GBK")`), and free-text fields marked `fit`
are shortened to fit when rendered for that encoding. Everything else (the
validator, the Chinese error messages, the response builder, masking for the message log, the
docs page and the test fixtures) is derived from that description.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db.models import Choices
from lxml import etree

from regional.messages.reader import local_name

STRING = "string"
INT = "int"
DATE = "date"
DATETIME = "datetime"
TIME = "time"
AMOUNT = "amount"
ENUM = "enum"
BOOL = "bool"
BLOB = "blob"

KIND_LABELS = {
    STRING: "字符串",
    INT: "整数",
    DATE: "日期 yyyy-mm-dd",
    DATETIME: "时间 yyyy-MM-dd HH:mm:ss",
    TIME: "时刻 HH:mm",
    AMOUNT: "金额（元，两位小数）",
    ENUM: "枚举",
    BOOL: "布尔 true/false",
    BLOB: "二进制（Base64）",
}

_INT_RE = re.compile(r"^[+-]?\d+$")
_DATE_RE = re.compile(r"^(\d{4})-?(\d{1,2})-?(\d{1,2})$")
# Java's Timestamp.toString() adds fractions ("2026-12-01 19:33:09.0"); they are read and dropped.
_DATETIME_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
# Any number of decimals is read ("12.5000" from SQL Server `money`); amounts are kept and rendered
# with two, rounding half up.
_AMOUNT_RE = re.compile(r"^\+?(\d{1,12}(\.\d*)?|\.\d+)$")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (`WorkInfo/Record[3]/WorkDate`) and what, in Chinese."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path} {self.message}" if self.path else self.message


class MessageInvalid(ValueError):
    """A message broke one or more rules of its description; every violation is listed."""

    def __init__(self, violations: Iterable[Violation]):
        self.violations = list(violations)
        super().__init__(self.summary())

    def summary(self, limit: int = 256) -> str:
        text = "；".join(str(v) for v in self.violations)
        return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Field:
    """One leaf element."""

    name: str
    label: str
    kind: str = STRING
    required: bool = False
    max_length: int | None = None
    # (code, label) pairs, or a code list of regional.messages.codes (its codes as the message writes them).
    choices: tuple[tuple[str, str], ...] | type[Choices] = ()
    # Masking kind for personal data (regional.pii.mask): id, phone, card, address, clinical, name.
    sensitive: str | None = None
    # The interface version that introduced the element (CONTRACT.md section 2); None: always sent.
    since: str | None = None
    # Codes that came with a later interface version than the element: (code, version).
    choices_since: tuple[tuple[str, str], ...] = ()
    # Free text that may be shortened to fit the receiver's byte length when the platform sends it.
    fit: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.choices, type) and issubclass(self.choices, Choices):
            object.__setattr__(self, "choices", tuple((str(code), label) for code, label in self.choices.choices))

    def clean(
        self,
        raw: str | None,
        path: str,
        out: list[Violation],
        *,
        encoding: str | None = None,
        version: str | None = None,
    ) -> Any:
        value = raw.strip() if raw is not None else ""
        if value == "":
            if self.required:
                out.append(Violation(path, f"为必填项（{self.label}）"))
            return None
        # Dates and times are bounded by their format: Java's "2026-12-01 19:33:09.0" is 21 characters
        # for a column the specification sizes 20, and reads as the same time.
        if self.max_length is not None and self.kind not in {DATE, DATETIME, TIME}:
            if encoding and self.kind == STRING:
                size = byte_length(value, encoding)
                if size > self.max_length:
                    out.append(Violation(path, f"长度不能超过{self.max_length}字节（按{encoding}编码实际{size}字节）"))
                    return None
            elif len(value) > self.max_length:
                out.append(Violation(path, f"长度不能超过{self.max_length}个字符（实际{len(value)}个）"))
                return None
        try:
            cleaned = _CLEANERS[self.kind](self, value)
        except ValueError as exc:
            out.append(Violation(path, str(exc)))
            return None
        if version and self.choices_since:
            since = dict(self.choices_since).get(cleaned)
            if since and _version_key(version) < _version_key(since):
                label = dict(self.choices).get(cleaned, "")
                out.append(
                    Violation(path, f"取值{cleaned}（{label}）自接口版本V{since}起才有，对方接口版本为V{version}")
                )
                return None
        return cleaned

    def fitted(self, text: str, encoding: str | None) -> str:
        """`text` shortened, with an ellipsis, to this field's length (bytes of `encoding` when given)."""
        if not self.fit or self.max_length is None:
            return text
        measure = (lambda t: byte_length(t, encoding)) if encoding else len
        if measure(text) <= self.max_length:
            return text
        while text and measure(text + "…") > self.max_length:
            text = text[:-1]
        return text + "…"

    def format(self, value: Any) -> str:
        if value is None:
            return ""
        if self.kind == AMOUNT:
            return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))
        if self.kind == DATETIME and isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if self.kind == DATE and isinstance(value, dt.date):
            return value.isoformat()
        if self.kind == TIME and isinstance(value, dt.time):
            return value.strftime("%H:%M")
        if self.kind == BOOL:
            return "true" if value else "false"
        if self.kind == BLOB and isinstance(value, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(value)).decode("ascii")
        return str(value)

    def choice_text(self) -> str:
        return "、".join(f"{code}（{label}）" for code, label in self.choices)


def byte_length(text: str, encoding: str) -> int:
    """Bytes `text` takes in `encoding`; characters it cannot hold count as the character references
    that replace them on the wire (HospitalTransport encodes with xmlcharrefreplace)."""
    try:
        return len(text.encode(encoding, "xmlcharrefreplace"))
    except LookupError:
        return len(text.encode("utf-8"))


def _clean_string(f: Field, v: str) -> str:
    return v


def _clean_int(f: Field, v: str) -> int:
    if not _INT_RE.match(v):
        raise ValueError("应为整数")
    return int(v)


def _clean_date(f: Field, v: str) -> dt.date:
    m = _DATE_RE.match(v)
    try:
        if not m:
            raise ValueError
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError("格式应为yyyy-mm-dd") from None


def _clean_datetime(f: Field, v: str) -> dt.datetime:
    m = _DATETIME_RE.match(v.replace("：", ":"))
    try:
        if not m:
            raise ValueError
        return dt.datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0))
    except ValueError:
        raise ValueError("格式应为yyyy-MM-dd HH:mm:ss") from None


def _clean_time(f: Field, v: str) -> dt.time:
    m = _TIME_RE.match(v.replace("：", ":"))
    try:
        if not m:
            raise ValueError
        return dt.time(int(m[1]), int(m[2]), int(m[3] or 0))
    except ValueError:
        raise ValueError("格式应为HH:mm") from None


def _clean_amount(f: Field, v: str) -> Decimal:
    if not _AMOUNT_RE.match(v):
        raise ValueError("应为金额（元，不为负的数字）")
    try:
        return Decimal(v).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError("应为金额（元，不为负的数字）") from None


def _clean_enum(f: Field, v: str) -> str:
    for code, _label in f.choices:
        if code.lower() == v.lower():
            return code
    shown = v if len(v) <= 20 else v[:20] + "…"
    raise ValueError(f"取值应为{f.choice_text()}之一，实际为“{shown}”")


def _clean_bool(f: Field, v: str) -> bool:
    low = v.lower()
    if low in {"true", "1", "y", "yes", "是"}:
        return True
    if low in {"false", "0", "n", "no", "否"}:
        return False
    raise ValueError("应为true或false")


def _clean_blob(f: Field, v: str) -> bytes:
    try:
        return base64.b64decode("".join(v.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("应为Base64编码的二进制内容") from None


_CLEANERS: dict[str, Callable[[Field, str], Any]] = {
    STRING: _clean_string,
    INT: _clean_int,
    DATE: _clean_date,
    DATETIME: _clean_datetime,
    TIME: _clean_time,
    AMOUNT: _clean_amount,
    ENUM: _clean_enum,
    BOOL: _clean_bool,
    BLOB: _clean_blob,
}


@dataclass(frozen=True)
class Group:
    """A non-repeating element holding fields (`OrderInfo`, `NewWorkInfo`, `bespeak`)."""

    name: str
    label: str
    fields: tuple[Field | Group | RecordList, ...]
    required: bool = False


@dataclass(frozen=True)
class RecordList:
    """A container of repeating items (`WorkInfo` holding `Record`s)."""

    name: str
    label: str
    fields: tuple[Field | Group | RecordList, ...]
    item: str = "Record"
    required: bool = False
    max_items: int = 20000


Node = Field | Group | RecordList


def _children_by_name(element: etree._Element) -> dict[str, list[etree._Element]]:
    found: dict[str, list[etree._Element]] = {}
    for child in element:
        if isinstance(child.tag, str):
            found.setdefault(local_name(child).lower(), []).append(child)
    return found


def _text(element: etree._Element) -> str:
    # A leaf's text; markup inside a leaf (rare, wrong) is flattened rather than lost.
    if len(element):
        return "".join(element.itertext())
    return element.text or ""


def _parse_nodes(
    nodes: tuple[Node, ...], element: etree._Element, prefix: str, out: list[Violation], options: dict
) -> dict:
    """The description interpreted element by element: the reference `_compile_nodes` must agree with
    (tests/regional/test_messages.py compares the two on every interface)."""
    children = _children_by_name(element)
    data: dict[str, Any] = {}
    for node in nodes:
        path = f"{prefix}{node.name}"
        found = children.get(node.name.lower(), [])
        if isinstance(node, Field):
            if len(found) > 1:
                out.append(Violation(path, "出现了多次"))
            data[node.name] = node.clean(_text(found[0]) if found else None, path, out, **options)
        elif isinstance(node, Group):
            if not found or (len(found[0]) == 0 and not (found[0].text or "").strip()):
                if node.required:
                    out.append(Violation(path, f"为必填项（{node.label}）"))
                data[node.name] = None
            else:
                data[node.name] = _parse_nodes(node.fields, found[0], path + "/", out, options)
        else:
            items: list[dict] = []
            if found:
                records = [c for c in found[0] if isinstance(c.tag, str) and local_name(c).lower() == node.item.lower()]
                if len(records) > node.max_items:
                    out.append(Violation(path, f"记录数不能超过{node.max_items}条（实际{len(records)}条）"))
                    records = []
                for index, record in enumerate(records, start=1):
                    item = _parse_nodes(node.fields, record, f"{path}/{node.item}[{index}]/", out, options)
                    item["_index"] = index
                    items.append(item)
            if node.required and not items:
                out.append(Violation(path, f"至少应有一条{node.item}（{node.label}）"))
            data[node.name] = items
    return data


# -- compiled parsing ------------------------------------------------------------------------------
# `Message.parse` interprets the description through the functions above once per message type and
# options: each node becomes a closure that knows its element name, kind, limits and codes, so a
# 10,000-record message walks every element once and builds no path text until a rule is broken.
# A value that does not take the fast path is handed to `Field.clean` (or `_parse_nodes`' rules)
# with its full path, so every violation reads exactly as the interpreted parse would say it.

FieldParser = Callable[[str | None, str, list[Violation]], Any]
NodesParser = Callable[[etree._Element, str, list[Violation]], dict]
_MEMO_LIMIT = 4096  # distinct converted values kept per field (dates, times, prices repeat across records)


def _fast_field(f: Field, encoding: str | None, version: str | None) -> FieldParser:
    name, required, limit = f.name, f.required, f.max_length

    def slow(raw: str | None, prefix: str, out: list[Violation]) -> Any:
        return f.clean(raw, prefix + name, out, encoding=encoding, version=version)

    if (encoding and f.kind == STRING) or (version and f.choices_since) or f.kind in {BLOB, BOOL, DATETIME}:
        return slow  # byte lengths, version-bound codes and the rare kinds: the interpreted path
    if f.kind in {DATE, DATETIME, TIME}:
        limit = None  # bounded by their format (Field.clean)
    if f.kind == STRING:

        def clean_string(raw: str | None, prefix: str, out: list[Violation]) -> Any:
            value = raw.strip() if raw is not None else ""
            if value and (limit is None or len(value) <= limit):
                return value
            if not value and not required:
                return None
            return slow(raw, prefix, out)

        return clean_string
    if f.kind == ENUM:
        codes = {code.lower(): code for code, _label in reversed(f.choices)}  # the first code wins, as in _clean_enum

        def convert(value: str) -> Any:
            return codes[value.lower()]

    else:
        cleaner = _CLEANERS[f.kind]

        def convert(value: str) -> Any:
            return cleaner(f, value)

    memo: dict[str, Any] = {}

    def clean_value(raw: str | None, prefix: str, out: list[Violation]) -> Any:
        value = raw.strip() if raw is not None else ""
        if value and (limit is None or len(value) <= limit):
            try:
                return memo[value]
            except KeyError:
                pass
            try:
                cleaned = convert(value)
            except (KeyError, ValueError):
                return slow(raw, prefix, out)
            if len(memo) < _MEMO_LIMIT:
                memo[value] = cleaned
            return cleaned
        if not value and not required:
            return None
        return slow(raw, prefix, out)

    return clean_value


def _compile_nodes(nodes: tuple[Node, ...], encoding: str | None, version: str | None) -> NodesParser:
    """One closure parsing the children of an element as `_parse_nodes` does, in the same order."""
    steps: list[tuple[str, str, int, Any, Node]] = []
    for node in nodes:
        if isinstance(node, Field):
            steps.append((node.name.lower(), node.name, 0, _fast_field(node, encoding, version), node))
        elif isinstance(node, Group):
            steps.append((node.name.lower(), node.name, 1, _compile_nodes(node.fields, encoding, version), node))
        else:
            steps.append((node.name.lower(), node.name, 2, _compile_nodes(node.fields, encoding, version), node))
    names: dict[str, str] = {}  # tag as written → lower-cased local name
    # A record of leaves only (a schedule, a doctor) whose children are each there once and spelt as
    # the description spells them, the common case by far, takes a shorter way: no case folding.
    exact = frozenset(node.name for node in nodes)
    flat = None
    if all(kind == 0 for _key, _name, kind, _run, _node in steps) and len({key for key, *_ in steps}) == len(steps):
        flat = [(name, run) for _key, name, _kind, run, _node in steps]

    def parse(element: etree._Element, prefix: str, out: list[Violation]) -> dict:
        if flat is not None:
            by_tag = {child.tag: child for child in element}
            if len(by_tag) == len(element) and exact.issuperset(by_tag):
                data = {}
                for name, run in flat:
                    found = by_tag.get(name)
                    if found is None:
                        data[name] = run(None, prefix, out)
                    elif len(found):
                        data[name] = run("".join(found.itertext()), prefix, out)
                    else:
                        data[name] = run(found.text or "", prefix, out)
                return data
        children: dict[str, etree._Element] = {}
        repeated: set[str] | None = None
        for child in element:
            tag = child.tag
            if tag.__class__ is not str:
                continue
            key = names.get(tag)
            if key is None:
                key = names[tag] = tag.rsplit("}", 1)[-1].lower()
                if len(names) > 1024:  # a hostile message inventing names does not grow it for ever
                    names.clear()
            if key in children:
                if repeated is None:
                    repeated = set()
                repeated.add(key)
            else:
                children[key] = child
        data: dict[str, Any] = {}
        for key, name, kind, run, node in steps:
            found = children.get(key)
            if kind == 0:
                if repeated is not None and key in repeated:
                    out.append(Violation(prefix + name, "出现了多次"))
                if found is None:
                    data[name] = run(None, prefix, out)
                else:
                    data[name] = run("".join(found.itertext()) if len(found) else (found.text or ""), prefix, out)
            elif kind == 1:
                if found is None or (len(found) == 0 and not (found.text or "").strip()):
                    if node.required:
                        out.append(Violation(prefix + name, f"为必填项（{node.label}）"))
                    data[name] = None
                else:
                    data[name] = run(found, prefix + name + "/", out)
            else:
                data[name] = _parse_records(node, run, found, prefix + name, out)
        return data

    return parse


def _parse_records(
    node: RecordList, run: NodesParser, container: etree._Element | None, path: str, out: list[Violation]
) -> list[dict]:
    items: list[dict] = []
    if container is not None:
        item = node.item.lower()
        exact = node.item
        records = [c for c in container if c.tag == exact or (c.tag.__class__ is str and local_name(c).lower() == item)]
        if len(records) > node.max_items:
            out.append(Violation(path, f"记录数不能超过{node.max_items}条（实际{len(records)}条）"))
            records = []
        head = f"{path}/{node.item}["
        for index, record in enumerate(records, start=1):
            data = run(record, f"{head}{index}]/", out)
            data["_index"] = index
            items.append(data)
    if node.required and not items:
        out.append(Violation(path, f"至少应有一条{node.item}（{node.label}）"))
    return items


def _render_nodes(
    nodes: tuple[Node, ...], parent: etree._Element, data: dict, version: str | None, encoding: str | None
) -> None:
    for node in nodes:
        value = data.get(node.name) if data else None
        if isinstance(node, Field):
            if node.since and version and _version_key(version) < _version_key(node.since):
                continue
            child = etree.SubElement(parent, node.name)
            child.text = node.fitted(node.format(value), encoding)
        elif isinstance(node, Group):
            if value is None and not node.required:
                continue
            child = etree.SubElement(parent, node.name)
            _render_nodes(node.fields, child, value or {}, version, encoding)
        else:
            child = etree.SubElement(parent, node.name)
            for item in value or []:
                record = etree.SubElement(child, node.item)
                _render_nodes(node.fields, record, item, version, encoding)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)) or (0,)


def _iter_fields(nodes: tuple[Node, ...]) -> Iterable[Field]:
    for node in nodes:
        if isinstance(node, Field):
            yield node
        else:
            yield from _iter_fields(node.fields)


@dataclass(frozen=True)
class Message:
    """One request or response of the specification."""

    root: str
    fields: tuple[Node, ...]
    # Cross-field rules: functions of the cleaned data returning violations.
    checks: tuple[Callable[[dict], list[Violation]], ...] = field(default=())

    def parse(self, source: etree._Element, *, encoding: str | None = None, version: str | None = None) -> dict:
        """Validate an element against this description; return cleaned data or raise MessageInvalid.

        Every violation is reported at once, the cross-field checks' included. `encoding` (a message
        the platform sends) counts text lengths in bytes of the receiver's encoding; `version` refuses
        codes newer than the receiver's interface version."""
        out: list[Violation] = []
        name = local_name(source)
        if name.lower() != self.root.lower():
            raise MessageInvalid([Violation("", f"根元素应为<{self.root}>，实际为<{name}>")])
        data = self._compiled(encoding, version)(source, "", out)
        failed = [v.path for v in out]
        for check in self.checks:
            # A check about an element that already failed (OrderInfo when OrderInfo/StartDate is not a
            # date) would only repeat it in other words.
            out.extend(v for v in check(data) if not any(p == v.path or p.startswith(v.path + "/") for p in failed))
        if out:
            raise MessageInvalid(out)
        return data

    def _compiled(self, encoding: str | None, version: str | None) -> NodesParser:
        """The description compiled once per message type and options (see `_compile_nodes`)."""
        parsers = self.__dict__.get("_parsers")
        if parsers is None:
            parsers = self.__dict__.setdefault("_parsers", {})  # frozen: a cache beside the fields, not one
        parser = parsers.get((encoding, version))
        if parser is None:
            parser = parsers[(encoding, version)] = _compile_nodes(self.fields, encoding, version)
        return parser

    def render(self, data: dict, *, version: str | None = None, encoding: str | None = None) -> str:
        """Build the XML text of this message from `data` (keys are element names); elements newer than
        `version` are left out, and `fit` text is shortened to its length in `encoding`."""
        root = etree.Element(self.root)
        _render_nodes(self.fields, root, data, version, encoding)
        return etree.tostring(root, encoding="unicode")

    def all_fields(self) -> list[Field]:
        return list(_iter_fields(self.fields))

    def sensitive_names(self) -> dict[str, str]:
        """Lower-cased element name → masking kind, for the message log."""
        return {f.name.lower(): f.sensitive for f in self.all_fields() if f.sensitive}

    def example(self, overrides: dict | None = None, *, records: int = 2) -> dict:
        """Valid sample data built from the description (test fixtures, docs)."""
        data = _example_nodes(self.fields, records)
        lists = [node.name for node in self.fields if isinstance(node, RecordList)]
        if "Count" in data and lists:
            data["Count"] = len(data[lists[0]])
        if overrides:
            data.update(overrides)
        return data


def _example_value(f: Field, n: int) -> Any:
    if f.choices:
        return f.choices[0][0]
    if f.kind == INT:
        return n
    if f.kind == DATE:
        return dt.date.today() + dt.timedelta(days=1)
    if f.kind == DATETIME:
        return dt.datetime.now().replace(microsecond=0)
    if f.kind == TIME:
        return dt.time(8 + n % 8, 0)
    if f.kind == AMOUNT:
        return Decimal("12.50")
    if f.kind == BOOL:
        return True
    if f.kind == BLOB:
        return b"\x89PNG example"
    if f.sensitive == "id":
        return "3306XXXXXXXXXX" + f"{n:04d}"[-4:]
    if f.sensitive == "phone":
        return f"1340000{n:04d}"
    text = f"{f.name}{n}" if f.max_length is None or f.max_length >= len(f.name) + 3 else f"X{n}"
    return text[: f.max_length] if f.max_length else text


def _example_nodes(nodes: tuple[Node, ...], records: int, n: int = 1) -> dict:
    data: dict[str, Any] = {}
    for node in nodes:
        if isinstance(node, Field):
            data[node.name] = _example_value(node, n)
        elif isinstance(node, Group):
            data[node.name] = _example_nodes(node.fields, records, n)
        else:
            data[node.name] = [_example_nodes(node.fields, records, i) for i in range(1, records + 1)]
    return data
