"""Figures the tests measure (recovery times, 5xx counts, lost writes, latencies), printed in
one section at the end of the run so that a reader of the CI log sees them.

They are measurements, not assertions: a test asserts its generous bound and records the
strict figure here, so a loaded machine cannot turn a slow run into a red one while the number
stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    test: str
    name: str
    value: float | int | str
    unit: str


@dataclass
class Figures:
    """What one test measured; ``record`` adds a figure under the test's name."""

    test: str
    sink: list[Figure] = field(default_factory=list)

    def record(self, name: str, value: float | int | str, unit: str = "") -> None:
        if isinstance(value, float):
            value = round(value, 3)
        self.sink.append(Figure(self.test, name, value, unit))


# Every figure of the session, in the order they were recorded.
RECORDED: list[Figure] = []


def summary_lines() -> list[str]:
    lines: list[str] = []
    current = None
    for figure in RECORDED:
        if figure.test != current:
            current = figure.test
            lines.append(current)
        unit = f" {figure.unit}" if figure.unit else ""
        lines.append(f"    {figure.name}: {figure.value}{unit}")
    return lines
