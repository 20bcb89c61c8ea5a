"""Onboard a hospital: create it if needed, set its secret, IP allow-list and its interface settings."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from regional.errors import DomainError
from regional.models import Hospital
from regional.services import hospital_onboard

# option → Hospital field; only the options given are changed.
INTERFACE_OPTIONS = {
    "wsdl": "wsdl_url",
    "namespace": "soap_namespace",
    "part": "soap_part_name",
    "part_form": "soap_part_form",
    "soap_action": "soap_action_style",
    "soap_version": "soap_version",
    "encoding": "soap_encoding",
    "interface_version": "interface_version",
}


class Command(BaseCommand):
    help = "创建医院（如不存在）并设置其接入密钥、IP白名单和医院端接口设置"

    def add_arguments(self, parser):
        parser.add_argument("hospital_no", metavar="HOSPITALNO")
        parser.add_argument("--name", help="医院名称")
        parser.add_argument("--secret", help="指定密钥（不指定则首次生成并只显示一次）")
        parser.add_argument("--allow-ip", action="append", default=[], metavar="CIDR", help="允许的IP或网段，可多次")
        parser.add_argument("--endpoint", metavar="URL", help="医院端SOAP接口地址")
        parser.add_argument(
            "--wsdl", metavar="URL", help="医院端WSDL地址（有WSDL时命名空间、参数名、SOAP版本以WSDL为准）"
        )
        parser.add_argument("--namespace", metavar="URI", help="无WSDL时：医院服务的命名空间（targetNamespace）")
        parser.add_argument("--part", metavar="NAME", help="无WSDL时：参数元素名，如 xml、xmlStr、arg0")
        parser.add_argument(
            "--part-form",
            choices=[Hospital.PART_QUALIFIED, Hospital.PART_UNQUALIFIED],
            help="无WSDL时：参数元素是否带命名空间（JAX-WS/CXF 为 unqualified）",
        )
        parser.add_argument(
            "--soap-action",
            choices=[Hospital.ACTION_OPERATION, Hospital.ACTION_NAMESPACE, Hospital.ACTION_EMPTY],
            help="无WSDL时：SOAPAction 为操作名、命名空间+操作名（.NET）或空（CXF）",
        )
        parser.add_argument("--soap-version", choices=[Hospital.SOAP_11, Hospital.SOAP_12], help="SOAP版本")
        parser.add_argument("--encoding", metavar="CHARSET", help="报文编码，如 UTF-8、GBK")
        parser.add_argument("--interface-version", choices=Hospital.INTERFACE_VERSIONS, help="医院的接口版本")

    def handle(self, *args, hospital_no, name, secret, allow_ip, endpoint, **options):
        interface = {
            field: options[option] for option, field in INTERFACE_OPTIONS.items() if options[option] is not None
        }
        try:
            hospital, generated = hospital_onboard(
                hospital_no=hospital_no,
                name=name,
                secret=secret,
                allowed_networks=allow_ip,
                endpoint_url=endpoint,
                interface=interface,
            )
        except (DomainError, ValueError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        self.stdout.write(f"医院 {hospital.hospital_no}（{hospital.name}）已配置")
        self.stdout.write(
            f"接口：{hospital.wsdl_url or hospital.endpoint_url or '（未配置）'}  命名空间 {hospital.soap_namespace or '（默认）'}"
            f"  参数 {hospital.soap_part_name}（{hospital.get_soap_part_form_display()}）"
            f"  SOAPAction {hospital.get_soap_action_style_display()}  SOAP {hospital.soap_version}"
            f"  编码 {hospital.soap_encoding}  接口版本 V{hospital.interface_version}"
        )
        if generated:
            self.stdout.write("新密钥（只显示这一次，请妥善交给医院）：")
            self.stdout.write(generated)
