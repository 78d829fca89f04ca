"""The task: its model, its pure state rules, and the service that ties store, billing and files."""
