"""Voucherify-compatible exports: the catalog of objects, the query, the jobs, the API."""
