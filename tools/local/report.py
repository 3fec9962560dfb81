"""The run's report (per journey, step and region: what was checked, the outcome) and its
progress on stderr while it runs."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TextIO


class Outcome(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"  # needs a capability (or its journey module) that does not exist yet
    SKIPPED = "skipped"  # the stack does not enable what the journey exercises


@dataclass
class StepResult:
    title: str
    region: str | None
    outcome: Outcome
    checked: str = ""  # the state that was checked, as found
    detail: str = ""  # why it failed / what it is pending on
    # A failed step: what the functions it relies on logged meanwhile ("<function>: <line>").
    logs: list[str] = field(default_factory=list)


@dataclass
class JourneyResult:
    name: str
    title: str
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outcome(self) -> Outcome:
        outcomes = {s.outcome for s in self.steps}
        for outcome in (Outcome.FAIL, Outcome.PENDING, Outcome.PASS):
            if outcome in outcomes:
                return outcome
        return Outcome.SKIPPED


@dataclass
class PolicySummary:
    mandatory: int
    advisory: int
    policies: int
    resources: int
    text: str = ""  # the runner's report (printed when mandatory violations stop the run)
    # Advisory findings by policy name (how many resources each), so none passes unnamed.
    advisory_policies: dict[str, int] = field(default_factory=dict)


@dataclass
class RunReport:
    stack: str
    regions: list[str]
    endpoint: str = ""
    broken_wires: list[str] = field(default_factory=list)
    # Stack settings the run added so a journey can exercise what the stack leaves off.
    config_added: list[str] = field(default_factory=list)
    policy: PolicySummary | None = None
    materialised: dict[str, dict[str, int]] = field(default_factory=dict)
    not_materialised: dict[str, int] = field(default_factory=dict)
    unhandled_types: dict[str, int] = field(default_factory=dict)
    emulations: list[str] = field(default_factory=list)
    journeys: list[JourneyResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the run itself could not proceed
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Ctrl-C or SIGTERM stopped the journeys: what ran is reported, the rest did not run.
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return (not self.interrupted and not self.errors and (self.policy is None or self.policy.mandatory == 0)
                and all(j.outcome != Outcome.FAIL for j in self.journeys))

    def counts(self) -> dict[str, int]:
        counts = {o.value: 0 for o in Outcome}
        for journey in self.journeys:
            for step in journey.steps:
                counts[step.outcome.value] += 1
        return counts

    def to_json(self) -> str:
        data = asdict(self)  # an Outcome is a str: JSON writes its value
        for index, journey in enumerate(self.journeys):
            data["journeys"][index]["outcome"] = journey.outcome.value
        data["ok"] = self.ok
        data["not_exercised"] = not_exercised(self.not_materialised)
        data["counts"] = self.counts()
        return json.dumps(data, indent=2)


# What a declared resource kind left unmaterialised means for the system: the behaviour no
# journey exercises offline, however green the run.
NOT_EXERCISED: dict[str, str] = {
    # Route53 health checks and latency records are run by the DNS emulation (emulation/dns.py):
    # DNS failover is exercised (the game-day journey). The hosted zone itself is not.
    # The local device endpoint serves the declared domain name (SNI) with the run's own
    # server certificate and Python's TLS defaults.
    "iot domainConfiguration": "the device endpoint's TLS security policy and ACM server "
                               "certificate (domain configuration)",
    "wafv2 webAcl": "WAF rate limiting of the HTTPS APIs",
    "acm certificate": "ACM certificates and their DNS validation",
    "cloudwatch metricAlarm": "alarms, dashboards and their notifications",
    "cloudwatch dashboard": "alarms, dashboards and their notifications",
    "aws-native:iot:AccountAuditConfiguration": "Device Defender audits",
    "aws-native:iot:ScheduledAudit": "Device Defender audits",
    "iot loggingOptions": "AWS IoT logging",
}


def not_exercised(not_materialised: dict[str, int]) -> list[str]:
    """The behaviours behind the declared kinds the run did not stand up, each once."""
    return sorted({NOT_EXERCISED[kind] for kind in not_materialised if kind in NOT_EXERCISED})


def format_text(report: RunReport) -> str:
    lines = [f"Local run of stack {report.stack}: regions {', '.join(report.regions)}"
             + (f", moto at {report.endpoint}" if report.endpoint else "")]
    if report.broken_wires:
        from tools.local import journeys

        lines.append("Wires broken on purpose: " + "; ".join(
            f"{w} (must fail: {journeys.WIRES[w].journey}"
            + (f"; may also fail: {', '.join(also)}, which use its capability" if (
                also := journeys.also_affected(w)) else "") + ")"
            for w in report.broken_wires if w in journeys.WIRES))
    for added in report.config_added:
        lines.append(f"Config added for the run: {added}")
    if report.policy is not None:
        p = report.policy
        lines.append(f"Policy pack: {p.mandatory} mandatory, {p.advisory} advisory violation(s) "
                     f"({p.policies} policies over {p.resources} resources)")
        if p.advisory_policies:
            lines.append("  advisory: " + ", ".join(
                f"{name} ({count})" for name, count in sorted(p.advisory_policies.items())))
        if p.mandatory:
            lines.append(p.text)
    if report.materialised:
        lines.append("Materialised from the declared graph:")
        for region, kinds in sorted(report.materialised.items()):
            lines.append(f"  {region}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    if report.not_materialised:
        lines.append("Not materialised (nothing to run locally, or emulated): "
                     + ", ".join(f"{n} {k}" for k, n in sorted(report.not_materialised.items())))
    if report.unhandled_types:
        lines.append("No materialiser yet (add a row in tools/local/materialise.py): "
                     + ", ".join(f"{n} {k}" for k, n in sorted(report.unhandled_types.items())))
    if report.emulations:
        lines.append("Emulated: " + "; ".join(report.emulations))
    untried = not_exercised(report.not_materialised)
    if untried:
        lines.append("Not exercised offline (declared, checked by the policy pack and the "
                     "mocks tests only): " + "; ".join(untried))
    for journey in report.journeys:
        lines.append("")
        lines.append(f"{journey.title} [{journey.name}]: {journey.outcome.name} "
                     f"({journey.seconds:.1f} s)")
        for step in journey.steps:
            where = step.region or "-"
            lines.append(f"  {step.outcome.name:<8}{where:<15}{step.title}")
            if step.checked:
                lines.append(f"  {'':<23}checked: {step.checked}")
            if step.detail:
                lines.append(f"  {'':<23}{step.detail}")
            if step.logs:
                lines.append(f"  {'':<23}function logs meanwhile:")
                lines.extend(f"  {'':<25}{line}" for line in step.logs)
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    for error in report.errors:
        lines.append(f"error: {error}")
    counts = report.counts()
    lines.append("")
    lines.append(f"Result: {'OK' if report.ok else 'FAILED'}: {counts['pass']} passed, "
                 f"{counts['fail']} failed, {counts['pending']} pending, "
                 f"{counts['skipped']} skipped step(s) in {report.seconds:.1f} s")
    return "\n".join(lines)


class Progress:
    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._live = enabled and self._stream.isatty()
        self._started = time.monotonic()
        self._status_width = 0

    def _elapsed(self) -> str:
        return f"[{time.monotonic() - self._started:5.1f}s]"

    def phase(self, text: str) -> None:
        if not self._enabled:
            return
        self._clear()
        print(f"{self._elapsed()} {text}", file=self._stream, flush=True)

    def status(self, text: str) -> None:
        """A transient line (terminals only): what the run is doing right now."""
        if not self._live:
            return
        line = f"{self._elapsed()}   … {text}"[:120]
        self._stream.write("\r" + line.ljust(self._status_width))
        self._stream.flush()
        self._status_width = len(line)

    def _clear(self) -> None:
        if self._live and self._status_width:
            self._stream.write("\r" + " " * self._status_width + "\r")
            self._stream.flush()
            self._status_width = 0

    def done(self) -> None:
        self._clear()
