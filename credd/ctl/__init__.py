"""credctl: the control client. Standard library and credd's light modules only."""
