"""credd: keeps AWS MFA session credentials, and roles chained on them, fresh.

This module imports nothing outside the standard library: `credctl` loads it.
"""

__version__ = "0.1.0"
