"""What CloudWatch shows for the unit: AWS metrics, alarms from thresholds.yaml, their semantics, dashboards."""
