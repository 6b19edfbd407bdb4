"""Every item of the design document's pre- and post-deployment checklists (section "Operational
Procedures > Deployment Checklist"), in the document's order and words, each naming the check that
decides it. An item without a check says NOT CHECKED YET and which work brings it."""

from __future__ import annotations

from harness.checklist.model import ChecklistItem


def _items(phase: str, group: str, rows: list[tuple[str, str, str | None, str]]) -> list[ChecklistItem]:
    return [
        ChecklistItem(f"{phase}.{group}.{key}", phase, group, text, check, pending)
        for key, text, check, pending in rows
    ]


PRE_DEPLOYMENT = [
    *_items(
        "pre",
        "infrastructure_validation",
        [
            ("terraform_plan", "Terraform plan reviewed and approved", "not_emulated.terraform", ""),
            ("security_scan", "Security scan passed", "not_emulated.security_scan", ""),
            ("cost_estimation", "Cost estimation within budget", "cost.within_budget", ""),
            ("resource_quotas", "Resource quotas verified", "not_emulated.quotas", ""),
        ],
    ),
    *_items(
        "pre",
        "security_validation",
        [
            ("kms_keys", "KMS keys configured", "live.kms_key", ""),
            ("secrets", "Secrets Manager secrets created", "live.db_secret", ""),
            ("iam", "IAM roles and policies validated", "not_emulated.iam", ""),
            ("security_groups", "Security groups reviewed", "not_emulated.security_groups", ""),
        ],
    ),
    *_items(
        "pre",
        "network_validation",
        [
            ("vpc_cidr", "VPC CIDR ranges verified", "spec.network_cidr", ""),
            ("subnets", "Subnet allocations confirmed", "not_emulated.subnets", ""),
            ("route_tables", "Route tables configured", "not_emulated.route_tables", ""),
            ("nat_gateway", "NAT Gateway provisioned", "spec.nat_gateway", ""),
        ],
    ),
    *_items(
        "pre",
        "backup_validation",
        [
            ("schedules", "Backup schedules configured", "live.backup_schedule", ""),
            ("cross_region", "Cross-region backup enabled", "spec.cross_region_backup", ""),
            ("retention", "Retention policies set", "live.backup_retention", ""),
            ("recovery_procedures", "Recovery procedures documented", "drills.recovery_procedures", ""),
        ],
    ),
]

POST_DEPLOYMENT = [
    *_items(
        "post",
        "connectivity_tests",
        [
            ("rds_via_proxy", "RDS PostgreSQL accessible via RDS Proxy", "live.proxy_connect", ""),
            ("redis_from_lambda", "ElastiCache Redis accessible from Lambda", "lambda.redis_reached", ""),
            ("lambda_to_db", "Lambda functions can connect to database", "lambda.database_reached", ""),
            ("pgvector", "pgvector extension installed and functional", "live.pgvector", ""),
        ],
    ),
    *_items(
        "post",
        "security_tests",
        [
            ("encryption_at_rest", "Encryption at rest verified", "not_emulated.encryption_at_rest", ""),
            ("encryption_in_transit", "Encryption in transit verified", "security.in_transit", ""),
            ("security_group_rules", "Security group rules tested", "live.loopback_only", ""),
            ("iam_permissions", "IAM permissions validated", "not_emulated.iam", ""),
        ],
    ),
    *_items(
        "post",
        "performance_tests",
        [
            ("connection_pooling", "Database connection pooling working", "thresholds.pooling", ""),
            ("cache_hit_rates", "Cache hit rates within targets", "thresholds.cache", ""),
            ("vector_search", "Vector search performance acceptable", "thresholds.vector_search", ""),
            ("lambda_times", "Lambda function execution times normal", "thresholds.lambda_duration", ""),
        ],
    ),
    *_items(
        "post",
        "monitoring_tests",
        [
            ("metrics_flowing", "CloudWatch metrics flowing", "cloudwatch.metrics_flowing", ""),
            ("dashboards", "Dashboards displaying data", "cloudwatch.dashboards", ""),
            ("alarms", "Alarms configured and tested", "cloudwatch.alarms", ""),
            ("log_aggregation", "Log aggregation working", "cloudwatch.log_aggregation", ""),
        ],
    ),
    *_items(
        "post",
        "backup_tests",
        [
            ("automated_backups", "Automated backups running", "live.automated_backups", ""),
            ("manual_snapshot", "Manual snapshot creation tested", "live.manual_snapshot", ""),
            ("cross_region", "Cross-region backup verified", "spec.cross_region_backup", ""),
            ("restore", "Restore procedure validated", "drills.restore", ""),
        ],
    ),
]

CHECKLIST: tuple[ChecklistItem, ...] = (*PRE_DEPLOYMENT, *POST_DEPLOYMENT)
