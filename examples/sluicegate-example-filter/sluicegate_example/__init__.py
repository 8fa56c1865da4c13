"""An example team plugin for Sluicegate."""
