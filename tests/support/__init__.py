"""Test support shared by every service's tests (pytest plugins registered in the root conftest.py)."""
