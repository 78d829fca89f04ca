"""The queue's moving parts: the worker loop that claims and runs tasks, and the lease reaper."""
