from __future__ import annotations

import pytest

from regional import idnumber


class IdNumberTests:
    def test_the_standards_own_example_is_well_formed(self):
        assert idnumber.problem("11010519491231002X") is None
        assert idnumber.problem(" 11010519491231002x ") is None  # spaces and a lower-case x are normalised

    def test_a_wrong_check_digit_is_refused(self):
        assert idnumber.problem("110105194912310021") == "校验码不正确（GB 11643）"

    @pytest.mark.parametrize("value", ["3306XXXXXXXXXXXX", "3306XXXXXXXXXX0001", "12345", ""])
    def test_placeholders_and_fragments_are_refused(self, value):
        assert idnumber.problem(value).startswith("格式不正确")

    def test_an_impossible_birth_date_is_refused(self):
        first17 = "99999920261301001"  # month 13
        assert idnumber.problem(first17 + idnumber.check_digit(first17)) == "出生日期不正确"

    def test_fifteen_digit_numbers_are_accepted_with_a_real_date(self):
        assert idnumber.problem("999999900101001") is None
        assert idnumber.problem("999999901301001") == "出生日期不正确"
