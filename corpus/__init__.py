"""Verified trajectories: append (idempotent, gated), stats, export."""
