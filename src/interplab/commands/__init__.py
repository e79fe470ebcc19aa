"""CLI command groups, one module per technique family; each exposes ``register(app)``."""
