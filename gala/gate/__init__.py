"""The CI gate: latency budgets held against a run; the verdict as an exit code, a table, JUnit, JSON.

Runs in the `gala` process (`gala gate`, `gala run --budgets`). A part: it imports only
`gala.contract`, never the rehearsal or the capacity model.
"""
