"""Errors raised while ingesting an input."""

from __future__ import annotations


class InputMissing(FileNotFoundError):
    """An input is not there (yet): names the product, the input and the resolved location."""

    def __init__(self, product: str, input_name: str, kind: str, location: str, hint: str = ""):
        self.product, self.input_name, self.location = product, input_name, location
        message = (f"product {product!r}: input {input_name!r} ({kind}) not found at {location}"
                   + (f"; {hint}" if hint else ""))
        super().__init__(message)
