"""`sluice demo`: the whole pipeline on bundled real tickets and invoices."""
