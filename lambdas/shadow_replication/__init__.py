"""Shadow replication: capture (IoT rules) and apply (device-data stream), one function."""
