"""The specification as data: message descriptions, the hardened XML reader, parsing and rendering.

Protocol code (SOAP operations, the referral servlet, the hospital client) parses with
`Message.parse`, renders with `Message.render` and never touches elements itself.
"""

from regional.messages.reader import XmlReadError, read_xml
from regional.messages.schema import Field, Group, Message, MessageInvalid, RecordList, Violation

__all__ = ["Field", "Group", "Message", "MessageInvalid", "RecordList", "Violation", "XmlReadError", "read_xml"]
