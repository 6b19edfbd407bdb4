"""Security of the local unit: the checks of the document's security checklist.

A package of its own because a user meets it as a thing: `harness verify security` and the sign-off's
security section. The certificates the TLS endpoints present are made with the services
(harness.services.certificates), which the backends start without verifying anything.
"""
