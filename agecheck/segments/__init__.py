"""The shopping profiles: what each age group buys, corrected for the age model's errors."""
