"""Pricing and the credit ledger."""
