"""`make images`: the three OCI archives, built offline on Debian root filesystems (docs/images.md)."""
