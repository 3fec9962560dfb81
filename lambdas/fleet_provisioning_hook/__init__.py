"""Pre-provisioning hook of the fleet-provisioning template: allow-listed serials only."""
