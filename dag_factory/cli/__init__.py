"""The ``dataproducts`` command line."""
