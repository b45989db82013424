"""Signed result callbacks: the outbox write, delivery with retries, and the SSRF guard."""
