"""The hardened XML reader used for every inbound and outbound message.

No DTDs, no entities, no network; a size cap; any declared encoding (GBK and GB18030 included);
and the specification's own malformed end tags (`</ mzzycxbz >`, `<MediCardType>01<MediCardType>`)
repaired, as CONTRACT.md section 3 asks. Anything else that is not well-formed is refused with
the line and column.
"""

from __future__ import annotations

import codecs
import re

from django.conf import settings
from lxml import etree


class XmlReadError(ValueError):
    """The bytes are not a message we can read; `message` is Chinese and safe to show."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        if line is not None:
            message = f"{message}（第{line}行第{column}列）"
        super().__init__(message)
        self.message = message


_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_DECLARED_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9_.\-]+)["']""", re.IGNORECASE)
_DECLARATION_TEXT = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
# `</ name >`: whitespace after `</` is not XML, but the specification prints it.
_SPACED_END_TAG = re.compile(r"</\s+([^\s<>/]+)\s*>")
# `<Name>value<Name>` where the end tag lost its slash (6.1's MediCardType).
_UNCLOSED_LEAF = re.compile(r"<([A-Za-z_][\w.\-]*)>([^<]*)<\1>")
_FORBIDDEN = re.compile(r"<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_UNICODE_SIGNATURES = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"<\x00?\x00", "utf-16-le"),  # UTF-16 without a BOM, as XML 1.0 appendix F detects it
    (b"\x00<\x00?", "utf-16-be"),
)


def decode_body(data: bytes, *, charset: str | None = None) -> str:
    """Bytes to text: a BOM wins, then the XML declaration, then the transport's charset, then UTF-8,
    then GB18030.

    A declared encoding must decode the bytes cleanly; and UTF-8 text declared as GBK (which GBK
    would "decode" into mojibake such as 瀵嗛挜) is refused, never stored as garbage.
    """
    for signature, name in _UNICODE_SIGNATURES:
        if data.startswith(signature):
            try:
                return data.decode(name)
            except UnicodeDecodeError as exc:
                raise XmlReadError(f"内容不是有效的{name.upper()}编码（第{exc.start}字节）") from exc
    head = data[:200]
    declared = None
    match = _DECLARATION.match(head)
    if match:
        enc = _DECLARED_ENCODING.search(match.group(0))
        declared = enc.group(1).decode("ascii") if enc else None
    candidates = [c for c in (declared, charset) if c]
    for name in candidates:
        try:
            codec = codecs.lookup(name)
        except LookupError as exc:
            raise XmlReadError(f"无法识别的字符编码：{name[:40]}") from exc
        # GBK bodies often carry GB18030-only characters (rare surnames); GB18030 is a superset.
        if codec.name in {"gbk", "gb2312"}:
            codec = codecs.lookup("gb18030")
        if codec.name == "gb18030" and _is_utf8_text(data):
            raise XmlReadError(f"内容是UTF-8编码，与声明的字符编码{name[:40]}不符，请按实际编码声明")
        try:
            return data.decode(codec.name)
        except UnicodeDecodeError as exc:
            raise XmlReadError(f"内容与声明的字符编码{name[:40]}不符（第{exc.start}字节）") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise XmlReadError("无法识别的字符编码：既不是UTF-8也不是GBK") from exc


def _is_utf8_text(data: bytes) -> bool:
    """Non-ASCII bytes that are valid UTF-8 and read as Chinese: real GBK text practically never is
    (its trail bytes would have to fall in 0x80-0xBF after every lead byte, in UTF-8's exact pattern)."""
    if data.isascii():
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return any("\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef" for ch in text)


def read_xml(data: bytes | str, *, charset: str | None = None, max_bytes: int | None = None) -> etree._Element:
    """Parse one message and return its root element; raise XmlReadError with a Chinese reason."""
    limit = max_bytes if max_bytes is not None else settings.MESSAGE_MAX_BYTES
    encoded = data.encode("utf-8") if isinstance(data, str) else None
    size = len(encoded) if encoded is not None else len(data)
    if size > limit:
        raise XmlReadError(f"报文过大：{size}字节，上限为{limit}字节")
    original = text = data if isinstance(data, str) else decode_body(data, charset=charset)
    text = _DECLARATION_TEXT.sub("", text, count=1).strip()
    if not text:
        raise XmlReadError("报文为空")
    if _FORBIDDEN.search(text):
        raise XmlReadError("报文不得包含DTD或实体声明（DOCTYPE/ENTITY）")
    text = _SPACED_END_TAG.sub(r"</\1>", text)
    if text is not original or encoded is None:  # re.sub and strip hand back the same str when they change nothing
        encoded = text.encode("utf-8")
    try:
        root = etree.fromstring(encoded, _parser())
    except etree.XMLSyntaxError as first:
        repaired = _UNCLOSED_LEAF.sub(r"<\1>\2</\1>", text)
        if repaired == text:
            raise _syntax_error(first) from None
        try:
            root = etree.fromstring(repaired.encode("utf-8"), _parser())
        except etree.XMLSyntaxError:
            raise _syntax_error(first) from None
    if root is None:
        raise XmlReadError("报文为空")
    return root


# libxml2's messages are English ("Premature end of data in tag fqyydm line 1"); the hospital reads
# the reason in a Chinese error, so the common ones are said in Chinese and the rest generically.
_LIBXML_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (r"Premature end of data in tag (\S+)", "标签<{0}>没有结束（报文提前结束）"),
        (r"Opening and ending tag mismatch: (\S+) line \d+ and ([^\s,]+)", "开始标签<{0}>与结束标签</{1}>不匹配"),
        (r"Couldn't find end of Start Tag (\S+)", "标签<{0}>的开始标签没有结束"),
        (r"Extra content at the end of the document", "根元素之后还有多余内容"),
        (r"Start tag expected", "缺少开始标签（未找到“<”）"),
        (r"Document is empty", "报文为空"),
        (r"StartTag: invalid element name", "开始标签的元素名无效"),
        (r"xmlParseEntityRef: no name", "“&”之后缺少实体名（正文中的“&”应写作&amp;）"),
        (r"EntityRef: expecting ';'", "实体引用缺少“;”"),
        (r"Entity '(\S+)' not defined", "未定义的实体&{0};"),
        (r"Unescaped '<' not allowed in attributes values", "属性值中不允许未转义的“<”"),
        (r"AttValue: \S+ or \S+ expected", "属性值缺少引号"),
        (r"attributes construct error", "属性格式错误"),
        (r"Attribute (\S+) redefined", "属性{0}重复"),
        (r"expected '>'", "缺少“>”"),
        (
            r"(?:invalid Char value|out of allowed range|not a valid UTF-8|Input is not proper UTF-8)",
            "含有XML不允许的字符或编码错误",
        ),
        (r"(?:EndTag|end tag)", "结束标签格式错误"),
    )
)


def _chinese_reason(message: str) -> str:
    for pattern, reason in _LIBXML_REASONS:
        match = pattern.search(message)
        if match:
            return reason.format(*match.groups())
    return "XML语法错误"


def _syntax_error(exc: etree.XMLSyntaxError) -> XmlReadError:
    line, column = exc.position if exc.position else (None, None)
    return XmlReadError(f"报文不是格式正确的XML：{_chinese_reason(exc.msg or '')}", line=line, column=column)


def local_name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]
