"""Content-Security-Policy for every response.

Scripts run only from the platform itself or, inline, with this response's nonce
(`<script nonce="{{ request.csp_nonce }}">`): an injected `<script>` or `onclick` never runs, even if
escaping were missed somewhere. Styles may be inline (the admin and the referral pages use style
attributes); nothing is framed, no plugin loads, forms post only to the platform.
"""

from __future__ import annotations

import secrets

from django.http import HttpRequest, HttpResponse

POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", POLICY.format(nonce=request.csp_nonce))
        return response
