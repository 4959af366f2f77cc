"""Snapshot types and codecs, cursor commits, replay digests."""
