"""`credd`'s one-shot commands: check, init, login, install."""
