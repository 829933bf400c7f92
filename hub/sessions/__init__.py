"""Session lifecycle: engine.py (pure decisions), policy.py (quiet hours), runner.py (the
daemon's loop), operations.py (the seed's six operations) and analytics.py.

Deliberately no re-exports: `spottypotty invoke` imports only operations, and its
start-up time is a measured figure.
"""
