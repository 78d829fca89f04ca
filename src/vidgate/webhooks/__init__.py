"""Callbacks: signing (Standard Webhooks), the outbox dispatcher, and the callback service."""
