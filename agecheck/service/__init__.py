"""The HTTP service around the one till pipeline: the app, uploads, access tokens, the load gate and
the batcher that gathers faces from concurrent requests."""
