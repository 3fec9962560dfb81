"""Records fleet-provisioned devices in the inventory once AWS IoT has provisioned them."""
