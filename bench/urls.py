"""The platform's URLs plus `/bench/bare`: a bare Django view parsing the same XML with lxml.

It is the baseline of the load run's SOAP ratio: what the SOAP path costs beyond reading the body.
"""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from lxml import etree

from config.urls import urlpatterns as platform

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@csrf_exempt
def bare(request):
    root = etree.fromstring(request.body, PARSER)
    inner = next(e for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("}xml"))
    message = etree.fromstring(inner.text.encode(), PARSER)
    answer = f"<Response><ResultCode>0</ResultCode><HospitalNo>{message.findtext('HospitalNo')}</HospitalNo></Response>"
    return HttpResponse(answer, content_type="text/xml; charset=utf-8")


urlpatterns = [path("bench/bare", bare), *platform]
