"""Channel authentication (`Authorization: Token <key>`, one key per channel) and the per-channel rate limit."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from booking.api.channel_cache import channel_by_token_hash
from booking.models import Channel, hash_token
from regional import ratelimit


class ChannelPrincipal:
    """What `request.user` is for a channel: authenticated, not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, channel: Channel):
        self.channel = channel
        self.username = f"channel:{channel.code}"

    def __str__(self) -> str:
        return self.username


class ChannelTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>`; the key is stored hashed (booking.models.hash_token)."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("令牌格式应为：Authorization: Token <令牌>")
        try:
            token = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("令牌格式不正确") from None
        channel = channel_by_token_hash(hash_token(token))
        if channel is None or not channel.is_active:
            raise exceptions.AuthenticationFailed("令牌无效或渠道已停用")
        return ChannelPrincipal(channel), channel

    def authenticate_header(self, request) -> str:
        return self.keyword


class IsChannel(permissions.BasePermission):
    message = "请使用渠道令牌访问（Authorization: Token <令牌>）"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Channel)


class ChannelRateThrottle(throttling.BaseThrottle):
    """RATE_LIMIT_CHANNEL_PER_MINUTE calls per channel and minute, counted in the shared cache."""

    def allow_request(self, request, view) -> bool:
        if not isinstance(request.auth, Channel):
            return True
        return ratelimit.allow(f"channel:{request.auth.code}", limit=settings.RATE_LIMIT_CHANNEL_PER_MINUTE)

    def wait(self) -> float:
        return float(ratelimit.retry_after())


class ChannelTokenScheme(OpenApiAuthenticationExtension):
    target_class = "booking.api.auth.ChannelTokenAuthentication"
    name = "ChannelToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "渠道令牌：`Token <令牌>`（由 `manage.py channel_token <渠道代码>` 签发）",
        }
