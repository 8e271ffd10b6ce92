"""The desk's server-drawn charts: the y-axis of a stacked bar chart never shows the same label
twice, whatever the scale (costs of a fraction of a cent a day showed `$0.0000` on every tick)."""

from __future__ import annotations

import re

import pytest

from gateway.compliance.desk import charts

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]


def y_labels(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end" class="axis">([^<]*)</text>', svg)


@pytest.mark.parametrize("top", [1e-9, 3e-7, 2e-6, 2e-5, 0.0003, 0.004, 0.012, 0.05, 0.3, 0.7, 1.3, 4.2, 12,
                                 37, 180, 2500, 123456])
def test_cost_axis_labels_are_distinct(top):
    svg = charts.stacked_bars("c", "Cost", DAYS, {"a": [top, top / 3, 0], "b": [0, top / 4, top / 7]},
                              {"a": "#000000", "b": "#111111"}, fmt=charts.usd)
    labels = y_labels(svg)
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
    assert labels[0] == "$0"


@pytest.mark.parametrize("top", [1, 3, 7, 12, 99, 1234])
def test_count_axis_labels_are_distinct(top):
    labels = y_labels(charts.stacked_bars("c", "Requests", DAYS, {"a": [top, 0, 1]}, {"a": "#000000"}))
    assert len(set(labels)) == len(labels) >= 2, labels


def test_bar_tooltips_keep_their_own_precision():
    svg = charts.stacked_bars("c", "Cost", DAYS, {"a": [12.5, 0.25, 0]}, {"a": "#000000"}, fmt=charts.usd)
    assert "a: $12.50</title>" in svg and "a: $0.2500</title>" in svg
