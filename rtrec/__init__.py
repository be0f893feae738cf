"""rtrec: real-time e-commerce recommendations."""
