"""Pure decision code: standard library only, no I/O, no clocks, no randomness."""
