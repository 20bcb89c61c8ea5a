"""The platform speaks Simplified Chinese to every person, whatever their browser asks for.

Staff in the region work in Chinese; a browser set to English must not turn the admin, the forms
or the API's error messages into a mix of both (Django's LocaleMiddleware follows Accept-Language).
"""

from __future__ import annotations

from django.conf import settings
from django.utils import translation


class ChineseOnlyMiddleware:
    """Activate settings.LANGUAGE_CODE (zh-hans) for every request and say so in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response
