"""The registration and rotation flows: plain code against the ports of `dal.ports`."""
