"""Data access: the AWS services the flows use, behind the protocols of `ports`."""
