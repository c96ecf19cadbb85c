"""punie-gates: a gated, cheapest-first go/no-go suite for a candidate Punie model."""

__version__ = "0.1.0"
