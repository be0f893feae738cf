"""Torch modules (architecture only) and the training wrappers that own their losses. Importing
these modules needs torch (the spark environment has it)."""
