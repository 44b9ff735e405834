"""Deployment files and the container boundary."""
