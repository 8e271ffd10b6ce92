from gateway.experts import collapse
from gateway.policy import MoeAlarm


def test_collapse_alarm_thresholds():
    alarm = MoeAlarm(max_cv=1.5, max_dead_fraction=0.5, min_tokens=100)
    healthy = {"loaded": True, "tokens": 5000, "max_cv": 0.3, "dead_experts": 0, "num_experts": 16, "moe_layers": 2}
    assert collapse(healthy, alarm) is None
    assert "CV" in collapse({**healthy, "max_cv": 2.2}, alarm)
    assert "dead" in collapse({**healthy, "dead_experts": 20}, alarm)  # 20 of 32 expert slots idle
    assert collapse({**healthy, "tokens": 50, "max_cv": 9.0}, alarm) is None  # too few tokens to judge
    assert collapse({"loaded": False}, alarm) is None
