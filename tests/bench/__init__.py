"""`make bench`: plain scripts, not pytest tests (pyproject's norecursedirs skips this).

Every figure is measured in the run that prints it and set beside a baseline measured
in the same run on the same machine (the raw SQL, a bare count, an empty interpreter),
so a ratio stays meaningful on a Raspberry Pi as on a laptop. Nothing is hard-coded but
the targets from the issue.
"""
