"""The AWS files: the pure credentials-file editor, the safe writer, read-only lookups.

Standard library only: `credctl import` uses them.
"""
