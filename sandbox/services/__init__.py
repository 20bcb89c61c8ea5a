"""The sandbox hospital's HIS: its booking rules, its queue, its cards, and its pushes to the center.

The SOAP operations (sandbox/operations.py), the admin actions and the tests all call
these functions. Errors are DomainErrors whose Chinese message starts with the element they are
about (`WorkId 排班…不存在`), so that the interface's ErrorMsg names the field.

Pushes (`center_push_*`) go over SOAP to the platform; they are never called inside a database
transaction: the local change commits first, then the center is told.

Split by concern: `schedules` (sessions, numbers, queue, stops and changes), `orders` (orders,
medical cards, injected faults) and `pushes` (the messages sent to the center). Callers import
the functions from here.
"""

from sandbox.services.orders import *  # noqa: F403
from sandbox.services.orders import __all__ as _orders
from sandbox.services.pushes import *  # noqa: F403
from sandbox.services.pushes import __all__ as _pushes
from sandbox.services.schedules import *  # noqa: F403
from sandbox.services.schedules import __all__ as _schedules

__all__ = [*_schedules, *_orders, *_pushes]
