"""Input of the doctors' pages: parse what was posted (types, presence) and look up what it names;
every rule (valid codes, lengths, who may choose what) is the services' and comes back as InvalidInput."""

from __future__ import annotations

from django import forms

from referral.services import TEXT_LIMIT
from regional.messages.codes import Urgency
from regional.models import Department, Hospital


class SubmitForm(forms.Form):
    """The sending doctor's choices on the application form (his.html)."""

    hospital = forms.CharField(label="转入医院", max_length=36, error_messages={"required": "请选择转入医院"})
    department = forms.CharField(label="转入科室", max_length=36, required=False)
    urgency = forms.CharField(
        label="紧急程度",
        widget=forms.RadioSelect(choices=Urgency.choices),
        error_messages={"required": "请选择紧急程度"},
    )
    purpose = forms.CharField(
        label="转诊目的",
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": TEXT_LIMIT}),
        error_messages={"required": "请填写转诊目的"},
    )
    notes = forms.CharField(
        label="补充说明（附注）",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": TEXT_LIMIT}),
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
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": TEXT_LIMIT}),
        error_messages={"required": "请填写原因"},
    )


class NoteForm(forms.Form):
    note = forms.CharField(
        label="说明",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": TEXT_LIMIT}),
    )


class AcceptForm(NoteForm):
    """Accepting a referral: an optional note and, optionally, a schedule to book (its WorkId; empty: 不预约)."""

    schedule = forms.CharField(required=False, max_length=100)
