"""Shared data contracts: one module per item or set of names that crosses a boundary.

* `inventory`         the device-inventory item (the replication contract, docs/data-model.md)
* `fleet_allow_list`  a fleet-provisioning allow-list entry of the shared provisioning table
                      (with `fleet_allow_list.json`, which the installer web app builds from)
* `shadows`           the device-state (shadow) record of the device-data table
* `things`            AWS IoT thing names (serials and device uids become thing names)
* `environment`       the environment variables each function is deployed with and reads
* `metrics`           the CloudWatch namespaces, services and metric names the functions publish
* `certificates`      AWS IoT's certificate id, derived from the PEM (SHA-256 of the DER)

Standard library only, but for `certificates` (`cryptography`, in the layer, imported lazily). Shipped to every function in the dependencies layer (as
`python/lambdas/contracts/`, see components/packaging.py), imported by the functions, by
the components that declare what the contract names (tables, filters, environments, alarms),
by the tools and by the tests, so a writer and its readers cannot disagree.
"""
