"""API keys: how they are made, shown once, stored hashed and checked."""
