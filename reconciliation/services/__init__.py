"""The rules of finance reconciliation (财务对账, spec 2.5), called alike by the nightly task, the
admin, the SOAP handler and the tests.

One module per concern; callers use the names re-exported here.

- `statement_import` / `statement_fetch` (statements): a channel's daily bill in, all or nothing.
- `statement_upload_request` / `statement_fetch_request` / `statement_import_execute` (imports): the
  same as a background task with its progress (the admin's upload and fetch go this way).
- `reconciliation_request` (queue a run) / `reconciliation_run` (run now) / `reconciliation_execute`
  (runs, with hospital_check for the hospitals' view): three-way reconciliation of a date range.
  Per payment channel and day with a bill, the ledger and the bill are merged trade by trade (`engine.match`); differences at the edge of the day are
  looked up on the neighbouring days (跨日); orders whose money and states disagree are checked
  at their hospital (`GetOrderDetailInfo`, outside any transaction); then, in one transaction,
  the open discrepancies of the days reconciled are replaced by what was found. Discrepancies
  already explained with the same amounts are not raised again; resolved ones keep their history.
- `discrepancy_resolve` (discrepancies): open → explained / corrected, with who and why (and the
  audit trail).
- `reconciliation_info` (info): ReconciliationInfo's records for the calling hospital.
"""

from reconciliation.services.discrepancies import discrepancies_resolve, discrepancy_resolve
from reconciliation.services.hospital_check import compare_hospital
from reconciliation.services.imports import statement_fetch_request, statement_import_execute, statement_upload_request
from reconciliation.services.info import reconciliation_info
from reconciliation.services.runs import reconciliation_execute, reconciliation_request, reconciliation_run
from reconciliation.services.statements import statement_fetch, statement_import, statements_fetch_due

__all__ = [
    "compare_hospital",
    "discrepancies_resolve",
    "discrepancy_resolve",
    "reconciliation_execute",
    "reconciliation_info",
    "reconciliation_request",
    "reconciliation_run",
    "statement_fetch",
    "statement_fetch_request",
    "statement_import",
    "statement_import_execute",
    "statement_upload_request",
    "statements_fetch_due",
]
