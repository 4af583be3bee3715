"""Data contracts: a product's output promise (schema, Soda checks, SLOs) exported to the
Bitol open standards (ODCS for the contract, ODPS for the product) and compared across
versions."""
