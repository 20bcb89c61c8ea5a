"""Input of the doctors' pages: parse and look up what was posted; the rules live in services."""

from __future__ import annotations

from django import forms

from referral.models import Referral
from referral.services import TEXT_LIMIT
from regional.models import Department, Hospital


class SubmitForm(forms.Form):
    """The sending doctor's choices on the application form (his.html)."""

    hospital = forms.CharField(label="转入医院", max_length=36, error_messages={"required": "请选择转入医院"})
    department = forms.CharField(label="转入科室", max_length=36, required=False)
    urgency = forms.ChoiceField(
        label="紧急程度",
        choices=Referral.Urgency.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "请选择紧急程度", "invalid_choice": "请选择紧急程度"},
    )
    purpose = forms.CharField(
        label="转诊目的",
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "请填写转诊目的", "max_length": f"转诊目的不能超过{TEXT_LIMIT}字"},
    )
    notes = forms.CharField(
        label="补充说明（附注）",
        max_length=TEXT_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"max_length": f"补充说明不能超过{TEXT_LIMIT}字"},
    )

    def clean_hospital(self) -> Hospital:
        code = self.cleaned_data["hospital"].strip()
        hospital = Hospital.objects.filter(hospital_no=code).first()
        if hospital is None:
            raise forms.ValidationError("未找到该医院，请从列表中选择")
        return hospital

    def clean(self):
        data = super().clean()
        hospital = data.get("hospital")
        code = (data.get("department") or "").strip()
        data["department"] = None
        if hospital is not None and code:
            department = Department.objects.filter(hospital=hospital, department_id=code).first()
            if department is None:
                self.add_error("department", "所选科室不属于转入医院，请重新选择")
            data["department"] = department
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="原因",
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "请填写原因", "max_length": f"原因不能超过{TEXT_LIMIT}字"},
    )


class NoteForm(forms.Form):
    note = forms.CharField(
        label="说明",
        max_length=TEXT_LIMIT,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"max_length": f"说明不能超过{TEXT_LIMIT}字"},
    )


class AcceptForm(NoteForm):
    """Accepting a referral: an optional note and, optionally, a schedule to book (its WorkId; empty: 不预约)."""

    schedule = forms.CharField(required=False, max_length=100)
