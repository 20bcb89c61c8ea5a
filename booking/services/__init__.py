"""Booking services (writes), one module per concern; callers import the concern's module.

- `channels`: API tokens of the booking channels.
- `schedules`: 2.1 sync, 2.2 stop, 2.3 change, and their carry-through to orders.
- `patients`: the patient of a booking, limits per patient, no-show bans.
- `orders`: lock, payment, cancellation, expiry, reconciliation of interrupted locks.
- `reports`: the hospital's 2.4 reports and the live order query (3.6).
- `waitlist`, `reminders`: rules 5 and 6.
- `outbox`: messages owed to hospitals, delivered after commit.
- `live`: live reads from hospitals (slots, queue, remaining count, cards).

Reads (`order_get`, `schedule_get`, `waitlist_entries`) are in `booking.selectors`.
"""
