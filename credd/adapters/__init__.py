"""One home per third-party library or OS service.

STS (boto3), the scheduler (APScheduler), the service manager (sdnotify), clocks.
"""
