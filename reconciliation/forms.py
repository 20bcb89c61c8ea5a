"""The finance staff's forms: reconcile now, upload or fetch a bill, resolve differences, a source's secret."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from reconciliation.models import Discrepancy, ReconciliationRun, StatementSource
from regional.messages.codes import PayChannel
from regional.models import Hospital


def _yesterday() -> dt.date:
    return timezone.localdate() - dt.timedelta(days=1)


DATE = forms.DateInput(attrs={"type": "date"})


class ReconcileForm(forms.Form):
    date_from = forms.DateField(label="开始日期", initial=_yesterday, widget=DATE)
    date_to = forms.DateField(label="结束日期", initial=_yesterday, widget=DATE)
    hospital = forms.ModelChoiceField(
        label="医院", queryset=Hospital.objects.filter(is_deleted=False), required=False, empty_label="全部医院"
    )
    pay_channel = forms.ChoiceField(label="支付渠道", choices=[("", "全部渠道"), *PayChannel.choices], required=False)
    hospital_check = forms.ChoiceField(
        label="医院状态核对",
        choices=ReconciliationRun.HospitalCheck.choices,
        initial=ReconciliationRun.HospitalCheck.DISPUTED,
    )
    fetch = forms.BooleanField(label="先从渠道获取缺少的对账单", required=False, initial=True)

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            self.add_error("date_to", "结束日期不能早于开始日期")
        return data


class UploadForm(forms.Form):
    source = forms.ModelChoiceField(label="对账单来源", queryset=StatementSource.objects.all(), empty_label=None)
    bill_date = forms.DateField(label="账单日期", initial=_yesterday, widget=DATE)
    file = forms.FileField(label="对账单文件", help_text="微信支付交易账单或支付宝业务明细CSV，GBK或UTF-8编码均可")


class FetchForm(forms.Form):
    source = forms.ModelChoiceField(
        label="对账单来源",
        queryset=StatementSource.objects.exclude(adapter=StatementSource.UPLOAD),
        empty_label=None,
    )
    bill_date = forms.DateField(label="账单日期", initial=_yesterday, widget=DATE)


class ResolveForm(forms.Form):
    status = forms.ChoiceField(
        label="处理结果",
        choices=[
            (Discrepancy.Status.EXPLAINED, "已说明（不是错误，说明原因）"),
            (Discrepancy.Status.CORRECTED, "已更正（已修正数据或补退款）"),
        ],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(label="处理意见", max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class StatementSourceForm(forms.ModelForm):
    secret = forms.CharField(
        label="密钥",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="HTTP下载的密码或令牌；加密保存，留空则不修改",
    )

    class Meta:
        model = StatementSource
        fields = (
            "name", "pay_channel", "merchant_id", "adapter", "url", "username", "secret", "timeout_seconds",
            "sandbox_options", "is_active",
        )  # fmt: skip

    def clean_sandbox_options(self):
        # Only the names are checked here; the sandbox channel, a partner reached over HTTP, checks
        # the values and answers a bad one with HTTP 400 (shown as the source's last error).
        options = self.cleaned_data.get("sandbox_options") or {}
        if not isinstance(options, dict):
            raise forms.ValidationError("沙箱差异设置应为JSON对象")
        unknown = sorted(set(options) - set(StatementSource.SANDBOX_KNOBS))
        if unknown:
            known = "、".join(sorted(StatementSource.SANDBOX_KNOBS))
            raise forms.ValidationError(f"沙箱差异设置含未知项：{'、'.join(unknown)}（可用：{known}）")
        return options

    def save(self, commit=True):
        source = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            source.set_secret(self.cleaned_data["secret"])
        if commit:
            source.save()
        return source
