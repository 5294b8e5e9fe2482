"""Shorty: a Kubernetes-native URL shortener."""

__version__ = "0.1.0"
