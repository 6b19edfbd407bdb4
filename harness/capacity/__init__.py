"""Capacity planning: how far the unit can grow (data and request rate) before it stops meeting the thresholds."""
