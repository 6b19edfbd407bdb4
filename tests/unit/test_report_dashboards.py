"""The report draws the document's dashboards widget by widget from the datapoints the run recorded; a widget
without data says so, one on resources the local unit lacks says NOT EMULATED, and a run that recorded nothing
says that instead of drawing."""

from __future__ import annotations

from typing import Any

from harness.report.dashboards import NOT_RECORDED, dashboard_rows, dashboard_widgets, dashboards_html


def run_with(dashboards: dict[str, Any]) -> dict[str, Any]:
    return {"cloudwatch": {"dashboards": {"since": 1000.0, "until": 1300.0, "dashboards": dashboards}}}


CPU = {
    "title": "RDS CPU and freeable memory",
    "stat": "Average",
    "period_s": 60,
    "levels": [{"label": "warning", "value": 70.0}, {"label": "critical", "value": 90.0}],
    "lines": [
        {
            "namespace": "AWS/RDS",
            "metric": "CPUUtilization",
            "dimensions": "DBInstanceIdentifier=db",
            "points": [[1020.0, 40.0], [1080.0, 75.0], [1140.0, 30.0]],
        },
        {"namespace": "AWS/RDS", "metric": "FreeableMemory", "dimensions": "DBInstanceIdentifier=db", "points": []},
    ],
}
STORAGE = {
    "title": "Storage",
    "stat": "Minimum",
    "period_s": 60,
    "levels": [],
    "lines": [
        {"namespace": "AWS/RDS", "metric": "FreeStorageSpace", "dimensions": "DBInstanceIdentifier=db", "points": []}
    ],
}
NAT = {
    "title": "NAT gateway utilisation",
    "lines": [
        {"namespace": "AWS/NATGateway", "metric": "BytesOutToDestination", "not_emulated": "NOT EMULATED: no NAT"}
    ],
}


def test_each_widget_with_datapoints_is_drawn_in_the_dashboards_order():
    widgets = dashboard_widgets(
        run_with(
            {
                "dbunit-network": {"on_stack": True, "widgets": [NAT]},
                "dbunit-database": {"on_stack": True, "widgets": [CPU, STORAGE]},
            }
        )
    )
    assert [(w.dashboard, w.title) for w in widgets] == [
        ("dbunit-database", "RDS CPU and freeable memory"),
        ("dbunit-database", "Storage"),
        ("dbunit-network", "NAT gateway utilisation"),
    ]
    cpu, storage, nat = widgets
    assert cpu.chart is not None and cpu.chart.svg.startswith(b"<?xml")
    assert "drawn: 3 datapoints of CPUUtilization" in cpu.status
    assert "FreeableMemory (DBInstanceIdentifier=db): no datapoint in this run" in cpu.status
    assert storage.chart is None and "FreeStorageSpace" in storage.status and "no datapoint" in storage.status
    assert nat.chart is None and "NOT EMULATED: no NAT" in nat.status
    html = dashboards_html(widgets)
    assert html.count("<figure") == 1 and "<h3>dbunit-database</h3>" in html


def test_a_dashboard_missing_from_the_stack_is_said_on_each_of_its_widgets():
    (widget,) = dashboard_widgets(run_with({"dbunit-database": {"on_stack": False, "widgets": [CPU]}}))
    assert widget.status.startswith("the dashboard is not on the stack")


def test_a_run_without_recorded_dashboards_says_so_and_draws_nothing():
    assert dashboard_widgets({}) == []
    assert dashboard_rows([]) == [("all four", "-", NOT_RECORDED)]
    assert dashboards_html([]).strip() == ""
