"""The cashier audit: who sells alcohol to young-looking customers without an ID check."""
