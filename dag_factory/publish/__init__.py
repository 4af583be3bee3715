"""Publish: make audited partitions visible atomically, with a manifest and an asset event."""
