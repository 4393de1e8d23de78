"""Test doubles and helpers shared by credd's tests (a fault-injecting STS, moto's server)."""
