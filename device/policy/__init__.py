"""How far up the exits a frame goes: calibrated thresholds, the router, the guard's cost model."""
from device.policy.costs import CostModel
from device.policy.router import (POLICY_FORMS, CascadePolicy, FixedPolicy, PolicyError, Router, RouterSettings,
                                  ThermalLimits, make_policy)

__all__ = ["CascadePolicy", "CostModel", "FixedPolicy", "POLICY_FORMS", "PolicyError", "Router", "RouterSettings",
           "ThermalLimits", "make_policy"]
