"""AWS partitions and the STS region credd uses in each when none is configured.

Standard library only, and no `re`: a leaf any part of credd may import. The one table
of partitions (CONVENTIONS 13): `credd login` and the policy both take their default
region from here.
"""

from __future__ import annotations

# Each partition's usual STS region: where its global endpoint lives.
PARTITION_REGIONS: dict[str, str] = {
    "aws": "us-east-1",
    "aws-cn": "cn-north-1",
    "aws-us-gov": "us-gov-west-1",
}
DEFAULT_PARTITION = "aws"
DEFAULT_REGION = PARTITION_REGIONS[DEFAULT_PARTITION]


def partition_of(arn: str) -> str | None:
    """The partition an ARN names (`aws-cn` of `arn:aws-cn:iam::...`); None if not an ARN."""
    parts = arn.split(":", 2)
    if len(parts) < 3 or parts[0] != "arn" or not parts[1]:
        return None
    return parts[1]


def default_region(arn: str | None) -> str:
    """The STS region of the partition `arn` is in; `us-east-1` for any other or no ARN.

    A hardware MFA token's serial (no ARN) and a partition not in the table get the
    commercial partition's, where STS's global endpoint is.
    """
    partition = partition_of(arn) if arn else None
    return PARTITION_REGIONS.get(partition or DEFAULT_PARTITION, DEFAULT_REGION)
