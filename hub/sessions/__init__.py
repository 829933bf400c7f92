"""Session lifecycle: engine.py (pure decisions), changes.py (create/update/end requests and
their pure rules), policy.py (quiet hours), runner.py (the one owner of session state),
local.py (invoke with no daemon), operations.py (the seed's six operations), analytics.py.

Deliberately no re-exports: `spottypotty invoke` imports only what its event needs, and
its start-up time is a measured figure.
"""
