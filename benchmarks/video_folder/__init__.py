"""Bring your own data: a folder of captioned videos / images as a streaming benchmark (see docs/data.md)."""
