"""Audit records: one per API request, written off the request path."""
