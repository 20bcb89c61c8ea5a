"""Resident ID numbers (居民身份证号码, GB 11643-1999): what makes one well formed.

Meant for wherever a patient is identified by the number (booking, referral matching): a number
that cannot be a real one (a placeholder such as the specification's `3306XXXXXXXXXXXX`, a wrong
check digit, an impossible birth date) would never match the same patient later. Called by the
booking patient's cleaning, the card calls and the order query (REST), and the referral servlet's
three services (sfzh). Tests use `tests.base.fake_id`: region 999999, a valid check digit.
"""

from __future__ import annotations

import datetime as dt
import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_EIGHTEEN = re.compile(r"^\d{17}[\dX]$")
_FIFTEEN = re.compile(r"^\d{15}$")


def check_digit(first17: str) -> str:
    """The 18th character of a number whose first 17 digits are `first17` (ISO 7064 MOD 11-2)."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalise(value: str) -> str:
    return re.sub(r"\s+", "", value or "").upper()


def problem(value: str) -> str | None:
    """Why `value` is not a well-formed ID number, in Chinese (the value itself never appears); None if it is."""
    number = normalise(value)
    if _FIFTEEN.match(number):  # first-generation numbers: 6-digit area, yymmdd, 3-digit sequence
        birth = "19" + number[6:12]
    elif _EIGHTEEN.match(number):
        birth = number[6:14]
        if check_digit(number[:17]) != number[17]:
            return "校验码不正确（GB 11643）"
    else:
        return "格式不正确（应为18位身份证号，末位可为X；或15位旧号码）"
    try:
        born = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
    except ValueError:
        return "出生日期不正确"
    if born > dt.date.today() or born.year < 1880:
        return "出生日期不正确"
    return None
