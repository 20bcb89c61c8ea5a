"""Onboard a booking channel and print its API token."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from booking.services.channels import channel_issue_token


class Command(BaseCommand):
    help = "创建预约渠道（如不存在）并签发新的接口令牌（旧令牌随即失效）"

    def add_arguments(self, parser):
        parser.add_argument("code", metavar="CODE", help="渠道代码，如 JKMZWX（微信）、JKMYAPP（APP）")
        parser.add_argument("--name", help="渠道名称")

    def handle(self, *args, code, name, **options):
        channel, token = channel_issue_token(code=code, name=name)
        self.stdout.write(f"渠道 {channel.code}（{channel.name}）的新令牌（只显示这一次）：")
        self.stdout.write(token)
