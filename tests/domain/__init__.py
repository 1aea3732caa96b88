"""Tests of the pure domain layer: plans, calendar, roster parsing."""
