"""A fake AWS for scale benchmarks: see server.py."""
