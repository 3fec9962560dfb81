"""A region's monitoring (alarms, metric filters, dashboard) and the global dashboard.

`RegionalStack` creates the region's alert topic first (components/monitoring/topic.py),
hands every component it builds a transformation that adds the topic to each alarm's
actions, then builds `RegionalMonitoring` from what the edge and each capability watch
(`components/monitoring/watch.py`). `GlobalDashboard` (in `__main__`) shows every region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.monitoring import alarms as build
from components.monitoring.dashboards import (
    RegionSignals,
    global_dashboard_body,
    regional_dashboard_body,
)
from components.monitoring.watch import Watch


@dataclass(frozen=True)
class RegionalMonitoringArgs:
    region: str
    name_prefix: str  # `<app>-<env>-<region>`: alarm, filter and dashboard names
    watch: Watch
    tags: Mapping[str, str] = field(default_factory=dict)


class RegionalMonitoring(pulumi.ComponentResource):
    """An alarm for every failure the region's watch list names, and the region's dashboard."""

    def __init__(self, name: str, args: RegionalMonitoringArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:monitoring:RegionalMonitoring", name, None, opts)
        watch = args.watch
        at = build.Where(parent=self, name=name, region=args.region, prefix=args.name_prefix,
                         tags=args.tags)
        declared = [
            *(build.dead_letter_alarms(q, at) for q in watch.queues),
            *(build.machine_alarms(m, at) for m in watch.machines),
            *(build.pipe_alarms(p, at) for p in watch.pipes),
            *(build.function_alarms(f, at) for f in watch.functions),
            *(build.decision_alarms(d, at) for d in watch.decisions),
            *(build.api_alarms(a, at) for a in watch.apis),
        ]
        self.alarms: tuple[aws.cloudwatch.MetricAlarm, ...] = tuple(
            alarm for d in declared for alarm in d.alarms)
        self.metric_filters = tuple(f for d in declared for f in d.metric_filters)
        every_alarm = (*self.alarms, *watch.alarms)

        region = args.region
        self.signals: pulumi.Output[RegionSignals] = pulumi.Output.all(
            [q.queue.name for q in watch.queues],
            [m.machine.arn for m in watch.machines],
            [p.pipe.name for p in watch.pipes],
            [f.function.name for f in watch.functions],
            [a.api_name for a in watch.apis],
            [a.arn for a in every_alarm],
        ).apply(lambda v: RegionSignals(
            region=region, queues=tuple(v[0]),
            machines=tuple((m.label, arn, m.namespace) for m, arn in zip(watch.machines, v[1])),
            pipes=tuple(v[2]), functions=tuple(v[3]),
            decisions=tuple((d.label, d.namespace, d.metric_name) for d in watch.decisions),
            apis=tuple((api, a.stage_name) for a, api in zip(watch.apis, v[4])),
            alarm_arns=tuple(v[5])))
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", region=region, dashboard_name=f"{args.name_prefix}-operations",
            dashboard_body=self.signals.apply(regional_dashboard_body),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name,
                               "alarm_count": len(every_alarm)})


@dataclass(frozen=True)
class GlobalDashboardArgs:
    region: str  # where the dashboard lives (the primary region); it shows every region
    dashboard_name: str
    regions: Sequence[pulumi.Output[RegionSignals]]


class GlobalDashboard(pulumi.ComponentResource):
    def __init__(self, name: str, args: GlobalDashboardArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:monitoring:GlobalDashboard", name, None, opts)
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", region=args.region, dashboard_name=args.dashboard_name,
            dashboard_body=pulumi.Output.all(*args.regions).apply(global_dashboard_body),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name})
