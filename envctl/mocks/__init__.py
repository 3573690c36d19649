"""Mocks on the host: a mock folded into the run as a service, its cassettes checked, its admin API.

`runtime.py` (a mock as a container built on the project's base), `cassettes.py` (checks before
`up`), `report.py` and `admin.py` (its admin API), `verify.py` (what tests expect), `drift.py`
(recorded requests sent to the upstream again). The server itself runs in the container and
lives in `envctl.mockserver`.
"""
