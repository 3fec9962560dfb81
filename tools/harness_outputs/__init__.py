"""Computed outputs per resource type for the offline harness, one module per capability.

Each module decorates functions with `tools.harness.register_outputs("aws:<module>/<x>:<X>")`;
the harness imports every module here when it loads.
"""
