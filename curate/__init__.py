"""curate: build medical SFT datasets from real sources and fine-tune Gemma on them."""

__version__ = "0.1.0"
