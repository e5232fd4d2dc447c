"""Built-in general-purpose stages."""
