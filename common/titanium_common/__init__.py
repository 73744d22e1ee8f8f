"""Titanium's shared service kit: what every service has, written once."""
