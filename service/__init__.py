"""Voucherify customer-activity webhook receiver."""
