"""The platform speaks Simplified Chinese to every person, whatever their browser asks for.

Staff in the region work in Chinese; a browser set to English must not turn the admin, the forms
or the API's error messages into a mix of both (Django's LocaleMiddleware follows Accept-Language).
"""

from __future__ import annotations

from django.conf import settings
from django.utils import translation
from django.views.i18n import JavaScriptCatalog


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


# Strings of the admin's scripts (SelectFilter2.js: the permission picker of a group or user) that
# Django 5.2's zh_Hans catalogue leaves untranslated; without them the picker reads
# "Choose 权限 by selecting them…" whatever language is active.
ADMIN_JS_TRANSLATIONS = {
    'Choose %s by selecting them and then select the "Choose" arrow button.': "选中%s，再点击“选择”箭头按钮。",
    'Remove %s by selecting them and then select the "Remove" arrow button.': "选中%s，再点击“删除”箭头按钮。",
    "Choose all %s": "全部选择%s",
    "Choose selected %s": "选择选中的%s",
    "Remove selected %s": "删除选中的%s",
    "Remove all %s": "全部删除%s",
    "(click to clear)": "（点击清除）",
}


class AdminJavaScriptCatalog(JavaScriptCatalog):
    """The admin's script catalogue in the site's language, completed where Django's is not."""

    def get(self, request, *args, **kwargs):
        # ChineseOnlyMiddleware has activated zh-hans already; pinned here as well because this
        # catalogue is what decides the language of every admin widget.
        with translation.override(settings.LANGUAGE_CODE):
            return super().get(request, *args, **kwargs)

    def get_catalog(self):
        catalog = super().get_catalog()
        for msgid, msgstr in ADMIN_JS_TRANSLATIONS.items():
            if not catalog.get(msgid):
                catalog[msgid] = msgstr
        return catalog


def install_admin_catalog(site) -> None:
    """Serve `site`'s /jsi18n/ from AdminJavaScriptCatalog (call before the URLconf is loaded)."""
    view = AdminJavaScriptCatalog.as_view(packages=["django.contrib.admin"])

    def i18n_javascript(request, extra_context=None):
        return view(request)

    site.i18n_javascript = i18n_javascript
