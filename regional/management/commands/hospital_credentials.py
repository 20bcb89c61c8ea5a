"""Onboard a hospital: create it if needed, set its secret, IP allow-list and SOAP address."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from regional.errors import DomainError
from regional.services import hospital_onboard


class Command(BaseCommand):
    help = "创建医院（如不存在）并设置其接入密钥、IP白名单和医院端接口地址"

    def add_arguments(self, parser):
        parser.add_argument("hospital_no", metavar="HOSPITALNO")
        parser.add_argument("--name", help="医院名称")
        parser.add_argument("--secret", help="指定密钥（不指定则首次生成并只显示一次）")
        parser.add_argument("--allow-ip", action="append", default=[], metavar="CIDR", help="允许的IP或网段，可多次")
        parser.add_argument("--endpoint", metavar="URL", help="医院端SOAP接口地址")

    def handle(self, *args, hospital_no, name, secret, allow_ip, endpoint, **options):
        try:
            hospital, generated = hospital_onboard(
                hospital_no=hospital_no, name=name, secret=secret, allowed_networks=allow_ip, endpoint_url=endpoint
            )
        except (DomainError, ValueError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        self.stdout.write(f"医院 {hospital.hospital_no}（{hospital.name}）已配置")
        if generated:
            self.stdout.write("新密钥（只显示这一次，请妥善交给医院）：")
            self.stdout.write(generated)
