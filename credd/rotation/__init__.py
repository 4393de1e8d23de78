"""Long-term key rotation (SPEC.md "Long-term keys"): the journal and the six steps.

Used by the daemon (`rotate_every`, `credctl rotate`) and by `credd keys rotate` /
`credd keys list`; IAM is reached through `credd.adapters.iam`.
"""
