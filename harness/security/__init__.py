"""Security of the local unit: the TLS certificates, the checks of the document's security checklist.

A package of its own because a user meets it as a thing: `harness verify security` and the sign-off's
security section. certificates: the private CA and server certificates the TLS endpoints present.
"""
