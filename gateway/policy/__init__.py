"""What a tenant's YAML policy says (model), how it is read and compiled (loader), swapped while
serving (reload), compared (diff) and edited from a terminal (cli). The model is the package's API."""

from gateway.policy.model import (
    Access,
    Alias,
    AuditPolicy,
    Backend,
    Breaker,
    Budgets,
    Cache,
    CheckRule,
    CheckWhen,
    HallucinationPolicy,
    Limits,
    MoeAlarm,
    Policy,
    Price,
    Routing,
    SpotlightPolicy,
    json_schema,
)

__all__ = ["Access", "Alias", "AuditPolicy", "Backend", "Breaker", "Budgets", "Cache", "CheckRule", "CheckWhen",
           "HallucinationPolicy", "Limits", "MoeAlarm", "Policy", "Price", "Routing",
           "SpotlightPolicy", "json_schema"]
