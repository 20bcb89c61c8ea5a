"""The appointment pool: booking channels (and, with the booking issues, schedules and orders)."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.utils import timezone


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Channel(models.Model):
    """A booking channel (预约渠道) such as WeChat `JKMZWX` or the app `JKMYAPP`, with one API key."""

    code = models.CharField("渠道代码", max_length=10, unique=True)
    name = models.CharField("渠道名称", max_length=50)
    token_hash = models.CharField("令牌摘要", max_length=64, unique=True, editable=False)
    token_hint = models.CharField("令牌尾号", max_length=8, editable=False, blank=True)
    is_active = models.BooleanField("启用", default=True)
    created_at = models.DateTimeField("创建时间", default=timezone.now)

    class Meta:
        verbose_name = "预约渠道"
        verbose_name_plural = "预约渠道"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name}（{self.code}）"

    def issue_token(self) -> str:
        token = secrets.token_hex(20)
        self.token_hash = hash_token(token)
        self.token_hint = token[-4:]
        return token
